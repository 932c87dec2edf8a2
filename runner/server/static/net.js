/* Small helpers with no page state: clock, ids, HTTP with timeouts, SDP codec filtering. */

const HTTP_TIMEOUT_MS = 10000;     // signalling requests

export const now = () => performance.now();
export const shortId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2)).slice(0, 8);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class HttpError extends Error {
  constructor(status, text, url) {
    super(`${url} answered ${status}${text ? `: ${text}` : ""}`);
    this.status = status;
  }
  get fatal() { return this.status >= 400 && this.status < 500; }
}

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function httpJson(method, url, body, timeoutMs = HTTP_TIMEOUT_MS) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(url, {
      method, signal: ctrl.signal, mode: "cors",
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === "AbortError") throw new Error(`${method} ${url}: no answer within ${timeoutMs / 1000} s`);
    throw new Error(`cannot reach the server (${method} ${url}): is pipeline-run running at that address?`);
  } finally {
    clearTimeout(timer);
  }
  const text = await response.text();
  if (!response.ok) throw new HttpError(response.status, text.slice(0, 300), `${method} ${url}`);
  try { return text ? JSON.parse(text) : {}; } catch { throw new Error(`${method} ${url}: answer is not JSON`); }
}

// Keep only `codec` (and its RTX) for one media kind in an SDP string; the rest is untouched.
export function filterCodec(sdp, kind, codec) {
  if (!codec || codec === "default") return sdp;
  const lines = sdp.split("\r\n");
  const keep = new Set();
  let inKind = false;
  for (const line of lines) {
    if (line.startsWith("m=")) inKind = line.startsWith(`m=${kind} `);
    const m = inKind && line.match(/^a=rtpmap:(\d+) (.+)$/);
    if (m && m[2].toLowerCase().startsWith(codec.toLowerCase())) keep.add(m[1]);
  }
  if (keep.size === 0) return sdp; // browser cannot send it: leave the offer alone, the log says so
  inKind = false;
  for (const line of lines) {  // RTX payloads whose apt points at a kept codec
    if (line.startsWith("m=")) inKind = line.startsWith(`m=${kind} `);
    const m = inKind && line.match(/^a=fmtp:(\d+) apt=(\d+)/);
    if (m && keep.has(m[2])) keep.add(m[1]);
  }
  const out = [];
  inKind = false;
  for (const line of lines) {
    if (line.startsWith("m=")) {
      inKind = line.startsWith(`m=${kind} `);
      if (inKind) {
        const parts = line.split(" ");
        out.push([...parts.slice(0, 3), ...parts.slice(3).filter((pt) => keep.has(pt))].join(" "));
        continue;
      }
    }
    const m = inKind && line.match(/^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)[ ]/);
    if (m && !keep.has(m[1])) continue;
    out.push(line);
  }
  return out.join("\r\n");
}
