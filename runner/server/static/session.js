/* The SmallWebRTC session: signalling over HTTP, the RTCPeerConnection, the "chat" data channel
 * (RTVI messages, pings, trackStatus) and reconnection.
 *
 * Flow: [POST /start] -> POST offer {sdp,type,pc_id,restart_pc} -> answer {sdp,type,pc_id}
 * -> PATCH offer {pc_id,candidates} (batched, 200 ms) -> data channel "chat" opens
 * -> trackStatus x2, "ping: <ms>" every second, RTVI client-ready -> bot-ready.
 */

import { attachMeter, describeMediaError, getCam, getMic, local, localStream, refreshDevices, renderToggles } from "./media.js";
import { filterCodec, HttpError, httpJson, now, shortId } from "./net.js";
import { recordMetrics } from "./metrics.js";
import { updateStats } from "./stats.js";
import { endBotTurn, hasBotBubble, logLine, say, setBotReady, setState, showError, stats, ui } from "./ui.js";

const CONNECT_TIMEOUT_MS = 15000;  // answer applied -> data channel open
const BOT_READY_TIMEOUT_MS = 10000;
const REQUEST_TIMEOUT_MS = 10000;  // client-message -> server-response
const MAX_RECONNECTS = 3;

function serverUrl(path) {
  const base = ui.base.value.trim();
  if (!base) return path;
  return new URL(path, base.endsWith("/") ? base : base + "/").toString();
}

// The one live session (or null); Session.stop() clears it.
let session = null;
export const currentSession = () => session;
export const setCurrentSession = (s) => { session = s; };

export class Session {
  constructor() {
    this.offerUrl = null;
    this.iceServers = [];
    this.pc = null;
    this.dc = null;
    this.pcId = null;
    this.closed = false;
    this.everOpen = false;
    this.reconnecting = false;
    this.attempts = 0;
    this.candidates = [];
    this.canSendCandidates = false;
    this.flushTimer = null;
    this.pingTimer = null;
    this.statsTimer = null;
    this.disconnectTimer = null;
    this.pending = new Map();  // request id -> {resolve, reject, timer}
    this.readyId = null;
    this.readyTimer = null;
    this.lastBytes = {};
  }

  async start() {
    stats.connectClickedAt = now();
    setState("initializing");
    if (local.micOn) {
      try {
        local.micTrack = await getMic();
      } catch (err) {
        throw new Error(describeMediaError(err, "Microphone"));
      }
    }
    if (local.camOn) {
      try {
        local.camTrack = await getCam();
      } catch (err) {
        logLine("error", describeMediaError(err, "Camera") + " Continuing without camera.");
        local.camOn = false;
        renderToggles();
      }
    }
    refreshDevices().catch(() => {});
    localStream();
    if (this.closed) return;

    if (ui.mode.value === "start") {
      setState("authenticating");
      const url = serverUrl("start");
      const body = { transport: "webrtc", body: {} };
      logLine("out", `POST ${url}`, body);
      const res = await httpJson("POST", url, body);
      logLine("in", `start → ${JSON.stringify(res)}`);
      if (this.closed) return;
      this.resolveStartResponse(res, url);
      setState("authenticated");
    } else {
      this.offerUrl = serverUrl("api/offer");
    }
    setState("connecting");
    await this.negotiate({ recreate: true, restart: false });
  }

  // The same response shapes the official client accepts.
  resolveStartResponse(res, startUrl) {
    const get = (camel, snake) => res[camel] ?? res[snake];
    const params = get("webrtcRequestParams", "webrtc_request_params");
    const ice = get("iceConfig", "ice_config");
    if (ice && Array.isArray(ice.iceServers ?? ice.ice_servers)) this.iceServers = ice.iceServers ?? ice.ice_servers;
    const sessionId = get("sessionId", "session_id");
    stats.sessionId = sessionId || null;
    if (params && params.endpoint) this.offerUrl = new URL(params.endpoint, location.href).toString();
    else if (get("webrtcUrl", "webrtc_url")) this.offerUrl = new URL(get("webrtcUrl", "webrtc_url"), location.href).toString();
    else if (get("connectionUrl", "connection_url")) this.offerUrl = new URL(get("connectionUrl", "connection_url"), location.href).toString();
    else if (sessionId) this.offerUrl = startUrl.replace(/start$/, `sessions/${encodeURIComponent(sessionId)}/api/offer`);
    else throw new Error("the /start answer has neither sessionId nor an offer URL");
  }

  newPeerConnection() {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: "max-bundle" });
    const audio = pc.addTransceiver("audio", { direction: "sendrecv" });
    const video = pc.addTransceiver("video", { direction: "sendrecv" });
    audio.sender.replaceTrack(local.micTrack || null);
    video.sender.replaceTrack(local.camTrack || null);
    const dc = pc.createDataChannel("chat", { ordered: true });

    pc.addEventListener("icecandidate", (ev) => {
      if (pc !== this.pc || !ev.candidate || !ev.candidate.candidate) return;
      this.candidates.push({
        candidate: ev.candidate.candidate, sdp_mid: ev.candidate.sdpMid, sdp_mline_index: ev.candidate.sdpMLineIndex,
      });
    });
    pc.addEventListener("iceconnectionstatechange", () => this.onIceState(pc));
    pc.addEventListener("connectionstatechange", () => {
      if (pc === this.pc) logLine("state", `peer connection: ${pc.connectionState}`);
    });
    pc.addEventListener("track", (ev) => this.onTrack(ev));
    dc.addEventListener("open", () => this.onChannelOpen(pc, dc));
    dc.addEventListener("message", (ev) => { if (pc === this.pc) this.onMessage(ev.data); });
    dc.addEventListener("close", () => {
      if (pc === this.pc && !this.closed) logLine("state", "data channel closed");
    });
    return { pc, dc };
  }

  // One signalling round: offer -> answer. recreate = new peer connection (restart_pc when one existed).
  async negotiate({ recreate, restart }) {
    let pc = this.pc;
    let dc = this.dc;
    const old = this.pc;
    if (recreate) {
      ({ pc, dc } = this.newPeerConnection());
      this.pc = pc;
      this.dc = dc;
      this.candidates = [];
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    let sdp = filterCodec(offer.sdp, "audio", ui.audioCodec.value);
    sdp = filterCodec(sdp, "video", ui.videoCodec.value);
    const body = { sdp, type: "offer", pc_id: this.pcId, restart_pc: Boolean(restart) };
    logLine("out", `POST ${this.offerUrl} offer (pc_id=${this.pcId}, restart_pc=${body.restart_pc})`, sdp);
    stats.messagesOut++;
    const answer = await httpJson("POST", this.offerUrl, body);
    if (this.closed) return;
    if (!answer || typeof answer.sdp !== "string") throw new Error("the offer answer carries no SDP");
    logLine("in", `answer (pc_id=${answer.pc_id})`, answer.sdp);
    stats.messagesIn++;
    this.pcId = answer.pc_id;
    stats.pcId = answer.pc_id;
    stats.answerSdp = answer.sdp;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    this.canSendCandidates = true;
    this.flushCandidates();
    if (!this.flushTimer) this.flushTimer = setInterval(() => this.flushCandidates(), 200);
    if (old && old !== pc) old.close();
    if (recreate) this.armConnectTimeout(pc, dc);
    if (!this.statsTimer) this.statsTimer = setInterval(() => updateStats(this.pc, this.lastBytes), 1000);
  }

  armConnectTimeout(pc, dc) {
    setTimeout(() => {
      if (this.closed || pc !== this.pc || dc.readyState === "open") return;
      this.failOrRetry(new Error(`no media connection within ${CONNECT_TIMEOUT_MS / 1000} s (ICE ${pc.iceConnectionState})`));
    }, CONNECT_TIMEOUT_MS);
  }

  async flushCandidates() {
    if (!this.canSendCandidates || !this.candidates.length || !this.pcId) return;
    const batch = this.candidates.splice(0);
    const body = { pc_id: this.pcId, candidates: batch };
    logLine("out", `PATCH ${this.offerUrl} ${batch.length} candidate(s)`, body);
    try {
      await httpJson("PATCH", this.offerUrl, body);
    } catch (err) {
      logLine("error", `trickle: ${err.message}`);  // like the official client: no retry
    }
  }

  onIceState(pc) {
    if (pc !== this.pc) return;
    const state = pc.iceConnectionState;
    logLine("state", `ICE: ${state}`);
    clearTimeout(this.disconnectTimer);
    if (state === "connected" || state === "completed") {
      this.attempts = 0;
    } else if (state === "failed") {
      this.attemptReconnection(true);
    } else if (state === "disconnected") {
      this.disconnectTimer = setTimeout(() => {
        if (pc === this.pc && pc.iceConnectionState === "disconnected") this.attemptReconnection(true);
      }, 5000);
    }
  }

  onTrack(ev) {
    const mid = ev.transceiver && ev.transceiver.mid;
    const track = ev.track;
    logLine("info", `remote ${track.kind} track (mid ${mid})`);
    if (track.kind === "audio") {
      const stream = new MediaStream([track]);
      ui.botAudio.srcObject = stream;  // Chrome only feeds remote audio to WebAudio if an element plays it
      ui.botAudio.play().catch((err) => logLine("error", `cannot play bot audio: ${err.message}`));
      attachMeter("remote", stream);
    } else {
      ui.botVideo.srcObject = new MediaStream([track]);
      const showing = () => { ui.botVideoNote.textContent = ""; };
      track.addEventListener("unmute", showing);
      if (!track.muted) showing();
      track.addEventListener("mute", () => { ui.botVideoNote.textContent = "(paused)"; });
    }
  }

  onChannelOpen(pc, dc) {
    if (pc !== this.pc || this.closed) return;
    this.everOpen = true;
    logLine("state", "data channel open");
    setState("connected");
    this.sendTrackStatus(0, local.micOn);
    this.sendTrackStatus(1, local.camOn);
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (this.dc && this.dc.readyState === "open") {
        const text = `ping: ${Date.now()}`;
        this.dc.send(text);
        stats.pingsSent++;
        logLine("ping", text);
      }
    }, 1000);
    this.readyId = shortId();
    this.sendRtvi("client-ready", {
      version: "2.1.0",
      about: { library: "pipeline-run-test-page", library_version: "0.1.0", platform: navigator.platform || "web" },
    }, this.readyId);
    setState("ready");
    clearTimeout(this.readyTimer);
    this.readyTimer = setTimeout(() => {
      if (!stats.botReady && !this.closed) {
        showError(`Connected, but the bot did not answer client-ready within ${BOT_READY_TIMEOUT_MS / 1000} s.`);
      }
    }, BOT_READY_TIMEOUT_MS);
  }

  sendRaw(obj) {
    if (!this.dc || this.dc.readyState !== "open") throw new Error("the data channel is not open");
    const text = JSON.stringify(obj);
    this.dc.send(text);
    stats.messagesOut++;
    logLine("out", text);
  }

  sendRtvi(type, data, id = shortId()) {
    this.sendRaw({ label: "rtvi-ai", type, id, data });
    return id;
  }

  sendTrackStatus(index, enabled) {
    if (!this.dc || this.dc.readyState !== "open") return;
    this.sendRaw({ type: "signalling", message: { type: "trackStatus", receiver_index: index, enabled } });
    stats.trackStatusSent.push({ receiver_index: index, enabled });
  }

  request(t, d, timeoutMs = REQUEST_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      const id = this.sendRtvi("client-message", { t, d });
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no server-response to "${t}" within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  onMessage(text) {
    stats.messagesIn++;
    let msg;
    try { msg = JSON.parse(text); } catch { logLine("in", text); return; }
    logLine("in", typeof text === "string" ? text : JSON.stringify(msg));
    if (msg.type === "signalling" && msg.message) {
      if (msg.message.type === "renegotiate") this.attemptReconnection(false);
      else if (msg.message.type === "peerLeft") {
        say("system", "the bot left");
        this.stop("bot left");
      }
      return;
    }
    if (msg.label !== "rtvi-ai") return;
    this.onRtvi(msg);
  }

  onRtvi(msg) {
    const d = msg.data || {};
    const pending = msg.id && this.pending.get(msg.id);
    switch (msg.type) {
      case "bot-ready":
        clearTimeout(this.readyTimer);
        if (!stats.botReady) {
          stats.connectToReadyMs = Math.round(now() - stats.connectClickedAt);
          ui.timing.textContent = `connect → bot-ready: ${stats.connectToReadyMs} ms`;
        }
        setBotReady(true);
        stats.botReadyData = d;
        showError("");
        say("system", `bot ready (RTVI ${d.version || "?"})`);
        break;
      case "server-response":
      case "error-response":
        stats.responses.push(msg);
        if (pending) {
          clearTimeout(pending.timer);
          this.pending.delete(msg.id);
          if (msg.type === "server-response") pending.resolve(d.d);
          else pending.reject(new Error(d.error || "error-response"));
        }
        if (msg.type === "error-response") say("system", `error: ${d.error}`);
        else say("system", `server-response ${d.t}: ${JSON.stringify(d.d)}`);
        break;
      case "error":
        say("system", `bot error${d.fatal ? " (fatal)" : ""}: ${d.error}`);
        break;
      case "server-message":
        say("system", `server-message: ${JSON.stringify(d)}`);
        break;
      case "user-started-speaking": say("system", "you started speaking"); break;
      case "user-stopped-speaking": say("system", "you stopped speaking"); break;
      case "bot-started-speaking": say("system", "bot started speaking"); endBotTurn(); break;
      case "bot-stopped-speaking": say("system", "bot stopped speaking"); endBotTurn(); break;
      case "bot-interrupted": say("system", "bot interrupted"); endBotTurn(); break;
      case "user-transcription":
        if (d.text) say("user", d.text, { pending: !d.final });
        break;
      // bot-output carries each spoken sentence once (bot-tts-text repeats it: not shown);
      // bot-transcription is the pre-2.2 name of the same thing.
      case "bot-output":
      case "bot-transcription":
        if (d.text) say("bot", (hasBotBubble() ? " " : "") + d.text, { append: true });
        break;
      case "bot-llm-started": endBotTurn(); break;
      case "metrics": recordMetrics(d); break;
      default:
        break;
    }
  }

  async attemptReconnection(recreate) {
    if (this.closed || this.reconnecting) return;
    if (this.attempts >= MAX_RECONNECTS) {
      this.stop(`connection lost; gave up after ${MAX_RECONNECTS} reconnection attempts`, true);
      return;
    }
    this.attempts++;
    stats.reconnects++;
    this.reconnecting = true;
    logLine("info", `reconnecting (attempt ${this.attempts}/${MAX_RECONNECTS}, ${recreate ? "restart_pc" : "same peer connection"})`);
    try {
      await this.negotiate({ recreate, restart: recreate });
      this.reconnecting = false;
    } catch (err) {
      this.reconnecting = false;
      if (err instanceof HttpError && err.fatal) {
        this.stop(`server refused to reconnect: ${err.message}`, true);
      } else {
        logLine("error", `reconnect failed: ${err.message}; retrying in 2 s`);
        setTimeout(() => this.attemptReconnection(true), 2000);
      }
    }
  }

  failOrRetry(err) {
    if (this.closed) return;
    if (!this.everOpen) {
      this.stop(err.message, true);
    } else {
      logLine("error", err.message);
      this.attemptReconnection(true);
    }
  }

  stop(reason, isError = false) {
    if (this.closed) return;
    this.closed = true;
    setState("disconnecting");
    for (const timer of [this.flushTimer, this.statsTimer, this.pingTimer]) clearInterval(timer);
    clearTimeout(this.readyTimer);
    clearTimeout(this.disconnectTimer);
    for (const { reject, timer } of this.pending.values()) { clearTimeout(timer); reject(new Error("disconnected")); }
    this.pending.clear();
    try { this.dc && this.dc.close(); } catch { /* closing anyway */ }
    try { this.pc && this.pc.close(); } catch { /* closing anyway */ }
    for (const track of [local.micTrack, local.camTrack]) if (track) track.stop();
    local.micTrack = null;
    local.camTrack = null;
    attachMeter("local", null);
    attachMeter("remote", null);
    ui.botAudio.srcObject = null;
    ui.botVideo.srcObject = null;
    ui.selfVideo.srcObject = null;
    ui.selfFigure.hidden = true;
    setBotReady(false);
    if (isError) showError(reason);
    else if (reason) logLine("info", reason);
    setState(isError ? "error" : "disconnected");
    if (session === this) session = null;
  }
}
