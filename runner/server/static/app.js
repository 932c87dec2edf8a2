/* pipeline-run test page: a SmallWebRTC client written against the wire protocol, no build step.
 *
 * Boot and wiring: button handlers, URL parameters (mode, server, audioCodec, processing).
 * Modules: ui.js (DOM, log, conversation), net.js (HTTP, SDP), media.js (devices, levels),
 * stats.js (getStats, echo delay), session.js (signalling, peer connection, data channel).
 * Test hooks: window.__stats (live numbers, ui.js) and window.__app (actions, below).
 */

import { audioContext, describeMediaError, getCam, getMic, local, localStream, renderToggles } from "./media.js";
import { HttpError } from "./net.js";
import { currentSession, Session, setCurrentSession } from "./session.js";
import { logLine, showError, stats, ui } from "./ui.js";

// ---------------------------------------------------------------- UI actions
async function connect() {
  if (currentSession()) return;
  showError("");
  stats.connectToReadyMs = null;
  stats.localOnsets.length = 0;
  stats.remoteOnsets.length = 0;
  stats.remoteAudioPeak = 0;
  stats.localAudioPeak = 0;
  ui.timing.textContent = "";
  audioContext();  // inside the click: allowed to start
  const s = new Session();
  setCurrentSession(s);
  try {
    await s.start();
  } catch (err) {
    const text = err instanceof HttpError
      ? (err.status === 503 ? `The server is full or unavailable: ${err.message}` : `The server refused the connection: ${err.message}`)
      : err.message;
    s.stop(text, true);
  }
}

function disconnect() {
  if (currentSession()) currentSession().stop("disconnected by you");
}

async function setMic(on) {
  local.micOn = on;
  renderToggles();
  if (!currentSession()) return;
  if (on && !local.micTrack) {
    try {
      local.micTrack = await getMic();
      localStream();
      await currentSession().pc.getTransceivers()[0].sender.replaceTrack(local.micTrack);
    } catch (err) {
      showError(describeMediaError(err, "Microphone"));
      local.micOn = false;
      renderToggles();
      return;
    }
  }
  if (local.micTrack) local.micTrack.enabled = on;
  currentSession().sendTrackStatus(0, on);
}

async function setCam(on) {
  local.camOn = on;
  renderToggles();
  if (!currentSession()) return;
  if (on && !local.camTrack) {
    try {
      local.camTrack = await getCam();
      localStream();
      await currentSession().pc.getTransceivers()[1].sender.replaceTrack(local.camTrack);
    } catch (err) {
      showError(describeMediaError(err, "Camera"));
      local.camOn = false;
      renderToggles();
      return;
    }
  }
  if (local.camTrack) local.camTrack.enabled = on;
  currentSession().sendTrackStatus(1, on);
}

async function switchDevice(kind) {
  if (!currentSession() || !currentSession().pc) return;
  try {
    if (kind === "audio" && local.micTrack) {
      const track = await getMic();
      track.enabled = local.micOn;
      local.micTrack.stop();
      local.micTrack = track;
      await currentSession().pc.getTransceivers()[0].sender.replaceTrack(track);
    } else if (kind === "video" && local.camTrack) {
      const track = await getCam();
      track.enabled = local.camOn;
      local.camTrack.stop();
      local.camTrack = track;
      await currentSession().pc.getTransceivers()[1].sender.replaceTrack(track);
    }
    localStream();
    logLine("info", `switched ${kind === "audio" ? "microphone" : "camera"}`);
  } catch (err) {
    showError(describeMediaError(err, kind === "audio" ? "Microphone" : "Camera"));
  }
}

async function sendFromBox() {
  if (!currentSession()) return;
  const kind = ui.sendKind.value;
  let data;
  const raw = ui.sendBody.value.trim();
  if (kind === "text") {  // plain text, as the user would type it
    if (raw) currentSession().sendRtvi("send-text", { content: raw, options: { run_immediately: true, audio_response: true } });
    return;
  }
  try {
    data = raw ? JSON.parse(raw) : null;
  } catch (err) {
    showError(`The message is not valid JSON: ${err.message}`);
    return;
  }
  showError("");
  try {
    if (kind === "raw") {
      currentSession().sendRaw(data);
    } else if (kind === "message") {
      currentSession().sendRtvi("client-message", { t: ui.sendType.value, d: data });
    } else {
      const answer = await currentSession().request(ui.sendType.value, data);
      logLine("info", `answer to "${ui.sendType.value}": ${JSON.stringify(answer)}`);
    }
  } catch (err) {
    showError(err.message);
  }
}

ui.connect.addEventListener("click", connect);
ui.disconnect.addEventListener("click", disconnect);
ui.micToggle.addEventListener("click", () => setMic(!local.micOn));
ui.camToggle.addEventListener("click", () => setCam(!local.camOn));
ui.mic.addEventListener("change", () => switchDevice("audio"));
ui.cam.addEventListener("change", () => switchDevice("video"));
ui.send.addEventListener("click", sendFromBox);
ui.sendKind.addEventListener("change", () => { ui.sendTypeRow.hidden = ["raw", "text"].includes(ui.sendKind.value); });
ui.clearLog.addEventListener("click", () => { ui.log.innerHTML = ""; });
window.addEventListener("beforeunload", () => { if (currentSession()) currentSession().stop(""); });

const params = new URLSearchParams(location.search);
if (params.get("mode")) ui.mode.value = params.get("mode");
if (params.get("server")) ui.base.value = params.get("server");
if (params.get("audioCodec")) ui.audioCodec.value = params.get("audioCodec");
if (params.get("processing") === "0") ui.processing.checked = false;
renderToggles();

window.__app = {
  connect, disconnect, setMic, setCam,
  request: (t, d, timeoutMs) => currentSession() ? currentSession().request(t, d, timeoutMs) : Promise.reject(new Error("not connected")),
  send: (obj) => currentSession() && currentSession().sendRaw(obj),
  forceIceRestart: () => currentSession() && currentSession().attemptReconnection(true),
};
