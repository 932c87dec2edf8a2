/* The page's DOM: element handles, test-visible state (window.__stats), log, conversation, status badges. */

import { now } from "./net.js";

const $ = (id) => document.getElementById(id);
export const ui = {
  state: $("state"), ready: $("ready"), error: $("error"), timing: $("timing"),
  mode: $("mode"), base: $("base"), audioCodec: $("audio-codec"), videoCodec: $("video-codec"),
  processing: $("processing"), connect: $("connect"), disconnect: $("disconnect"),
  mic: $("mic"), micToggle: $("mic-toggle"), cam: $("cam"), camToggle: $("cam-toggle"),
  localLevel: $("local-level"), remoteLevel: $("remote-level"),
  botVideo: $("bot-video"), botVideoNote: $("bot-video-note"), selfVideo: $("self-video"), selfFigure: $("self-figure"), botAudio: $("bot-audio"),
  stats: $("stats"), conversation: $("conversation"),
  sendKind: $("send-kind"), sendType: $("send-type"), sendTypeRow: $("send-type-row"), sendBody: $("send-body"),
  send: $("send"), log: $("log"), showPings: $("show-pings"), clearLog: $("clear-log"),
};

// ---------------------------------------------------------------- test-visible state
export const stats = {
  state: "disconnected", botReady: false, botReadyData: null, pcId: null, sessionId: null,
  connectClickedAt: null, connectToReadyMs: null, error: null,
  remoteAudioLevel: 0, remoteAudioPeak: 0, localAudioLevel: 0, localAudioPeak: 0,
  localOnsets: [], remoteOnsets: [], echoLatencyMs: null,
  messagesIn: 0, messagesOut: 0, pingsSent: 0, trackStatusSent: [],
  reconnects: 0, rtc: {}, log: [], responses: [], audioCodecNegotiated: null,
};
window.__stats = stats;
// ---------------------------------------------------------------- log and conversation
export function logLine(kind, text, detail) {
  const entry = { t: Math.round(now()), kind, text, detail };
  stats.log.push(entry);
  if (stats.log.length > 2000) stats.log.splice(0, 500);
  if (kind === "ping" && !ui.showPings.checked) return;
  const li = document.createElement("li");
  li.className = `log-${kind}`;
  const time = new Date().toLocaleTimeString([], { hour12: false });
  li.innerHTML = `<time></time><b></b><span></span>`;
  li.children[0].textContent = time;
  li.children[1].textContent = { in: "◀ in", out: "▶ out", state: "● state", error: "✖ error", info: "ℹ", ping: "▶ ping" }[kind] || kind;
  li.children[2].textContent = text;
  if (detail !== undefined) li.title = typeof detail === "string" ? detail : JSON.stringify(detail);
  const stick = ui.log.scrollTop + ui.log.clientHeight >= ui.log.scrollHeight - 8;
  ui.log.appendChild(li);
  while (ui.log.children.length > 500) ui.log.firstChild.remove();
  if (stick) ui.log.scrollTop = ui.log.scrollHeight;
}

let botBubble = null;
let userPending = null;
export function say(who, text, { append = false, pending = false } = {}) {
  if (who === "bot" && append && botBubble) {
    botBubble.querySelector("span").textContent += text;
    ui.conversation.scrollTop = ui.conversation.scrollHeight;
    return botBubble;
  }
  if (who === "user" && userPending) {
    userPending.querySelector("span").textContent = text;
    userPending.classList.toggle("pending", pending);
    const li = userPending;
    if (!pending) userPending = null;
    return li;
  }
  const li = document.createElement("li");
  li.className = `say-${who}${pending ? " pending" : ""}`;
  li.innerHTML = "<b></b><span></span>";
  li.children[0].textContent = who === "system" ? "" : who;
  li.children[1].textContent = text;
  ui.conversation.appendChild(li);
  while (ui.conversation.children.length > 200) ui.conversation.firstChild.remove();
  ui.conversation.scrollTop = ui.conversation.scrollHeight;
  if (who === "bot") botBubble = li;
  if (who === "user") { botBubble = null; if (pending) userPending = li; }
  return li;
}

// The bot's current speech bubble: a new one starts after each bot turn.
export function hasBotBubble() {
  return botBubble !== null;
}

export function endBotTurn() {
  botBubble = null;
}

export function showError(text) {
  stats.error = text;
  ui.error.textContent = text;
  ui.error.hidden = !text;
  if (text) logLine("error", text);
}

export function setState(state) {
  if (stats.state === state) return;
  stats.state = state;
  ui.state.textContent = state;
  ui.state.dataset.state = state;
  logLine("state", state);
  const busy = !["disconnected", "error"].includes(state);
  ui.connect.disabled = busy;
  ui.disconnect.disabled = !busy;
  ui.send.disabled = !(state === "connected" || state === "ready");
  for (const el of [ui.mode, ui.base, ui.audioCodec, ui.videoCodec, ui.processing]) el.disabled = busy;
}

export function setBotReady(ready) {
  stats.botReady = ready;
  ui.ready.hidden = !ready;
}
