/* Local media and audio: microphone/camera tracks, device lists, toggles, level meters and onsets. */

import { withTimeout, now } from "./net.js";
import { echoLatency } from "./stats.js";
import { stats, ui } from "./ui.js";

const ONSET_THRESHOLD = 0.05;      // RMS above which a tone burst "starts"
const OFFSET_THRESHOLD = 0.02;

// ---------------------------------------------------------------- audio levels and onsets
let audioCtx = null;
const meters = { local: null, remote: null };

export function audioContext() {
  if (!audioCtx) audioCtx = new (window.AudioContext || window.webkitAudioContext)();
  if (audioCtx.state === "suspended") audioCtx.resume().catch(() => {});
  return audioCtx;
}

export function attachMeter(which, stream) {
  if (meters[which]) { try { meters[which].source.disconnect(); } catch { /* already gone */ } }
  meters[which] = null;
  if (!stream || stream.getAudioTracks().length === 0) return;
  const ctx = audioContext();
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  meters[which] = { source, analyser, buf: new Float32Array(analyser.fftSize), on: false };
}

function pollMeters() {
  for (const which of ["local", "remote"]) {
    const m = meters[which];
    let rms = 0;
    if (m) {
      m.analyser.getFloatTimeDomainData(m.buf);
      let sum = 0;
      for (let i = 0; i < m.buf.length; i++) sum += m.buf[i] * m.buf[i];
      rms = Math.sqrt(sum / m.buf.length);
      const onsets = which === "local" ? stats.localOnsets : stats.remoteOnsets;
      if (!m.on && rms > ONSET_THRESHOLD) {
        m.on = true;
        onsets.push(now());
        if (onsets.length > 200) onsets.shift();
      } else if (m.on && rms < OFFSET_THRESHOLD) {
        m.on = false;
      }
    }
    if (which === "local") {
      stats.localAudioLevel = rms;
      stats.localAudioPeak = Math.max(stats.localAudioPeak, rms);
      ui.localLevel.style.width = `${Math.min(100, rms * 300)}%`;
    } else {
      stats.remoteAudioLevel = rms;
      stats.remoteAudioPeak = Math.max(stats.remoteAudioPeak, rms);
      ui.remoteLevel.style.width = `${Math.min(100, rms * 300)}%`;
    }
  }
  stats.echoLatencyMs = echoLatency();
}
setInterval(pollMeters, 5);

// ---------------------------------------------------------------- local media
export const local = { stream: null, micTrack: null, camTrack: null, micOn: true, camOn: false };

function audioConstraints() {
  const c = {};
  if (ui.mic.value) c.deviceId = { exact: ui.mic.value };
  const p = ui.processing.checked;
  c.echoCancellation = p; c.noiseSuppression = p; c.autoGainControl = p;
  return c;
}

export function describeMediaError(err, what) {
  if (err.name === "NotAllowedError" || err.name === "SecurityError") {
    return `${what} access was denied. Allow it in the browser's site settings${what === "Microphone" ? ", or turn the mic off before connecting to listen only" : ""}.`;
  }
  if (err.name === "NotFoundError" || err.name === "OverconstrainedError") return `No usable ${what.toLowerCase()} was found.`;
  if (err.name === "NotReadableError") return `The ${what.toLowerCase()} is busy or unavailable (another program may be using it).`;
  if (!navigator.mediaDevices) return "This page needs a secure context (https or localhost) to use media devices.";
  return `${what}: ${err.message || err.name}`;
}

export async function getMic() {
  if (!navigator.mediaDevices) throw new Error("media devices are unavailable: open the page over https or on localhost");
  const stream = await withTimeout(navigator.mediaDevices.getUserMedia({ audio: audioConstraints() }), 20000, "microphone permission");
  return stream.getAudioTracks()[0];
}

export async function getCam() {
  const video = ui.cam.value ? { deviceId: { exact: ui.cam.value } } : true;
  const stream = await withTimeout(navigator.mediaDevices.getUserMedia({ video }), 20000, "camera permission");
  return stream.getVideoTracks()[0];
}

export function localStream() {
  const tracks = [local.micTrack, local.camTrack].filter(Boolean);
  local.stream = new MediaStream(tracks);
  ui.selfVideo.srcObject = local.camTrack ? new MediaStream([local.camTrack]) : null;
  ui.selfFigure.hidden = !local.camTrack;
  attachMeter("local", local.micTrack ? new MediaStream([local.micTrack]) : null);
  return local.stream;
}

export async function refreshDevices() {
  if (!navigator.mediaDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of [[ui.mic, "audioinput"], [ui.cam, "videoinput"]]) {
    const current = select.value;
    select.innerHTML = '<option value="">default</option>';
    devices.filter((d) => d.kind === kind && d.deviceId && d.deviceId !== "default").forEach((d, i) => {
      const opt = document.createElement("option");
      opt.value = d.deviceId;
      opt.textContent = d.label || `${kind === "audioinput" ? "microphone" : "camera"} ${i + 1}`;
      select.appendChild(opt);
    });
    select.value = [...select.options].some((o) => o.value === current) ? current : "";
  }
}
if (navigator.mediaDevices) {
  navigator.mediaDevices.addEventListener?.("devicechange", () => refreshDevices().catch(() => {}));
  refreshDevices().catch(() => {});
}

export function renderToggles() {
  ui.micToggle.textContent = local.micOn ? "Mic on" : "Mic off";
  ui.micToggle.setAttribute("aria-pressed", String(local.micOn));
  ui.camToggle.textContent = local.camOn ? "Cam on" : "Cam off";
  ui.camToggle.setAttribute("aria-pressed", String(local.camOn));
}
