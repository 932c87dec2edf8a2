/* The metrics panel: the latest RTVI `metrics` value per processor (TTFB and processing time). */

import { stats } from "./ui.js";

const panel = () => document.getElementById("metrics");

// stats.metrics: {"ttfb:tts": {kind, processor, value, count}} — also read by browser tests.
stats.metrics = {};

export function recordMetrics(data) {
  for (const kind of ["ttfb", "processing"]) {
    for (const entry of Array.isArray(data[kind]) ? data[kind] : []) {
      if (typeof entry?.processor !== "string" || typeof entry?.value !== "number") continue;
      const key = `${kind}:${entry.processor}`;
      const seen = stats.metrics[key];
      stats.metrics[key] = { kind, processor: entry.processor, value: entry.value, count: (seen?.count || 0) + 1 };
    }
  }
  render();
}

function render() {
  const body = panel();
  if (!body) return;
  const rows = Object.values(stats.metrics).sort((a, b) => a.processor.localeCompare(b.processor) || a.kind.localeCompare(b.kind));
  body.replaceChildren(...rows.map((m) => {
    const tr = document.createElement("tr");
    for (const text of [m.processor, m.kind, `${Math.round(m.value * 1000)} ms`, `×${m.count}`]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }));
}
