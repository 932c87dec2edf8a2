/* Measurements: echo delay from tone onsets, getStats() numbers and the live stats table. */

import { now } from "./net.js";
import { stats, ui } from "./ui.js";

// Echo delay: each remote onset minus the latest local onset before it (within 2 s); median of the last ten.
export function echoLatency() {
  const pairs = [];
  let j = 0;
  const local = stats.localOnsets;
  for (const r of stats.remoteOnsets) {
    while (j + 1 < local.length && local[j + 1] <= r) j++;
    if (local.length && local[j] <= r && r - local[j] < 2000) pairs.push(r - local[j]);
  }
  if (!pairs.length) return null;
  const last = pairs.slice(-10).sort((a, b) => a - b);
  return Math.round(last[Math.floor(last.length / 2)]);
}

// One getStats() round: fills window.__stats.rtc and redraws the table. lastBytes (per row key) gives bit rates.
export function updateStats(pc, lastBytes) {
  if (!pc) return;
  pc.getStats().then((report) => {
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    const rows = {};
    const t = now();
    let pair = null;
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
    });
    if (!pair) report.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
    if (pair && pair.currentRoundTripTime !== undefined) rows.rtt = Math.round(pair.currentRoundTripTime * 1000);
    report.forEach((s) => {
      if (!["inbound-rtp", "outbound-rtp", "remote-inbound-rtp"].includes(s.type)) return;
      const kind = s.kind || s.mediaType;
      const key = `${kind}-${s.type}`;
      const row = (rows[key] = rows[key] || { kind, dir: s.type });
      const codec = s.codecId && byId.get(s.codecId);
      if (codec) row.codec = `${codec.mimeType.split("/")[1]}/${codec.clockRate}${codec.channels ? "/" + codec.channels : ""}`;
      if (s.type === "remote-inbound-rtp") {
        if (s.roundTripTime !== undefined) row.rtt = Math.round(s.roundTripTime * 1000);
        if (s.fractionLost !== undefined) row.loss = (s.fractionLost * 100).toFixed(1);
        return;
      }
      const bytes = s.type === "inbound-rtp" ? s.bytesReceived : s.bytesSent;
      const prev = lastBytes[key];
      if (prev && bytes !== undefined && t > prev.t) row.kbps = Math.round(((bytes - prev.bytes) * 8) / (t - prev.t));
      lastBytes[key] = { bytes, t };
      if (s.type === "inbound-rtp") {
        row.packets = s.packetsReceived;
        row.lost = s.packetsLost;
        if (s.packetsReceived + s.packetsLost > 0) row.loss = ((100 * s.packetsLost) / (s.packetsReceived + s.packetsLost)).toFixed(1);
        if (s.jitter !== undefined) row.jitter = Math.round(s.jitter * 1000);
        if (s.jitterBufferEmittedCount) row.jitterBuffer = Math.round((1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount);
        if (kind === "video" && s.frameWidth) row.size = `${s.frameWidth}×${s.frameHeight}@${Math.round(s.framesPerSecond || 0)}`;
      } else {
        row.packets = s.packetsSent;
      }
    });
    stats.rtc = rows;
    const audioIn = rows["audio-inbound-rtp"];
    if (audioIn && audioIn.codec) stats.audioCodecNegotiated = audioIn.codec;
    renderStats(rows);
  }).catch(() => {});
}

function renderStats(rows) {
  const lines = [];
  const add = (label, value, note = "") => lines.push([label, value, note]);
  add("ICE round trip", rows.rtt !== undefined ? `${rows.rtt} ms` : "–", "selected candidate pair");
  for (const [key, title] of [["audio-inbound-rtp", "audio in (bot)"], ["audio-outbound-rtp", "audio out (you)"],
    ["video-inbound-rtp", "video in (bot)"], ["video-outbound-rtp", "video out (you)"]]) {
    const r = rows[key];
    if (!r) continue;
    const parts = [r.codec || "?", r.kbps !== undefined ? `${r.kbps} kbit/s` : null,
      r.loss !== undefined ? `loss ${r.loss}%` : null, r.jitter !== undefined ? `jitter ${r.jitter} ms` : null,
      r.jitterBuffer !== undefined ? `buffer ${r.jitterBuffer} ms` : null, r.size || null].filter(Boolean);
    add(title, parts.join(" · "), r.packets !== undefined ? `${r.packets} pkts` : "");
  }
  const remote = rows["audio-remote-inbound-rtp"];
  if (remote && remote.rtt !== undefined) add("RTCP round trip", `${remote.rtt} ms`, remote.loss !== undefined ? `loss ${remote.loss}%` : "");
  if (stats.echoLatencyMs !== null) add("echo delay", `${stats.echoLatencyMs} ms`, "tone onset: mic → bot audio");
  ui.stats.innerHTML = "";
  for (const [a, b, c] of lines) {
    const tr = document.createElement("tr");
    for (const text of [a, b, c]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    ui.stats.appendChild(tr);
  }
}
