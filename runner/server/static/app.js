/* pipeline-run test page: a SmallWebRTC client written against the wire protocol, no build step.
 *
 * Flow: [POST /start] -> POST offer {sdp,type,pc_id,restart_pc} -> answer {sdp,type,pc_id}
 * -> PATCH offer {pc_id,candidates} (batched, 200 ms) -> data channel "chat" opens
 * -> trackStatus x2, "ping: <ms>" every second, RTVI client-ready -> bot-ready.
 * Test hooks: window.__stats (live numbers) and window.__app (actions).
 */
"use strict";

(() => {
  const HTTP_TIMEOUT_MS = 10000;     // signalling requests
  const CONNECT_TIMEOUT_MS = 15000;  // answer applied -> data channel open
  const BOT_READY_TIMEOUT_MS = 10000;
  const REQUEST_TIMEOUT_MS = 10000;  // client-message -> server-response
  const MAX_RECONNECTS = 3;
  const ONSET_THRESHOLD = 0.05;      // RMS above which a tone burst "starts"
  const OFFSET_THRESHOLD = 0.02;

  const $ = (id) => document.getElementById(id);
  const ui = {
    state: $("state"), ready: $("ready"), error: $("error"), timing: $("timing"),
    mode: $("mode"), base: $("base"), audioCodec: $("audio-codec"), videoCodec: $("video-codec"),
    processing: $("processing"), connect: $("connect"), disconnect: $("disconnect"),
    mic: $("mic"), micToggle: $("mic-toggle"), cam: $("cam"), camToggle: $("cam-toggle"),
    localLevel: $("local-level"), remoteLevel: $("remote-level"),
    botVideo: $("bot-video"), botVideoNote: $("bot-video-note"), selfVideo: $("self-video"), botAudio: $("bot-audio"),
    stats: $("stats"), conversation: $("conversation"),
    sendKind: $("send-kind"), sendType: $("send-type"), sendTypeRow: $("send-type-row"), sendBody: $("send-body"),
    send: $("send"), log: $("log"), showPings: $("show-pings"), clearLog: $("clear-log"),
  };

  // ---------------------------------------------------------------- test-visible state
  const stats = {
    state: "disconnected", botReady: false, botReadyData: null, pcId: null, sessionId: null,
    connectClickedAt: null, connectToReadyMs: null, error: null,
    remoteAudioLevel: 0, remoteAudioPeak: 0, localAudioLevel: 0, localAudioPeak: 0,
    localOnsets: [], remoteOnsets: [], echoLatencyMs: null,
    messagesIn: 0, messagesOut: 0, pingsSent: 0, trackStatusSent: [],
    reconnects: 0, rtc: {}, log: [], responses: [], audioCodecNegotiated: null,
  };
  window.__stats = stats;

  // ---------------------------------------------------------------- small helpers
  const now = () => performance.now();
  const shortId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2)).slice(0, 8);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  class HttpError extends Error {
    constructor(status, text, url) {
      super(`${url} answered ${status}${text ? `: ${text}` : ""}`);
      this.status = status;
    }
    get fatal() { return this.status >= 400 && this.status < 500; }
  }

  function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  function serverUrl(path) {
    const base = ui.base.value.trim();
    if (!base) return path;
    return new URL(path, base.endsWith("/") ? base : base + "/").toString();
  }

  async function httpJson(method, url, body, timeoutMs = HTTP_TIMEOUT_MS) {
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
  function filterCodec(sdp, kind, codec) {
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

  // ---------------------------------------------------------------- log and conversation
  function logLine(kind, text, detail) {
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
  function say(who, text, { append = false, pending = false } = {}) {
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

  function showError(text) {
    stats.error = text;
    ui.error.textContent = text;
    ui.error.hidden = !text;
    if (text) logLine("error", text);
  }

  function setState(state) {
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

  function setBotReady(ready) {
    stats.botReady = ready;
    ui.ready.hidden = !ready;
  }

  // ---------------------------------------------------------------- audio levels and onsets
  let audioCtx = null;
  const meters = { local: null, remote: null };

  function audioContext() {
    if (!audioCtx) audioCtx = new (window.AudioContext || window.webkitAudioContext)();
    if (audioCtx.state === "suspended") audioCtx.resume().catch(() => {});
    return audioCtx;
  }

  function attachMeter(which, stream) {
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

  // Echo delay: each remote onset minus the latest local onset before it (within 2 s); median of the last ten.
  function echoLatency() {
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

  // ---------------------------------------------------------------- local media
  const local = { stream: null, micTrack: null, camTrack: null, micOn: true, camOn: false };

  function audioConstraints() {
    const c = {};
    if (ui.mic.value) c.deviceId = { exact: ui.mic.value };
    const p = ui.processing.checked;
    c.echoCancellation = p; c.noiseSuppression = p; c.autoGainControl = p;
    return c;
  }

  function describeMediaError(err, what) {
    if (err.name === "NotAllowedError" || err.name === "SecurityError") {
      return `${what} access was denied. Allow it in the browser's site settings${what === "Microphone" ? ", or turn the mic off before connecting to listen only" : ""}.`;
    }
    if (err.name === "NotFoundError" || err.name === "OverconstrainedError") return `No usable ${what.toLowerCase()} was found.`;
    if (err.name === "NotReadableError") return `The ${what.toLowerCase()} is busy or unavailable (another program may be using it).`;
    if (!navigator.mediaDevices) return "This page needs a secure context (https or localhost) to use media devices.";
    return `${what}: ${err.message || err.name}`;
  }

  async function getMic() {
    if (!navigator.mediaDevices) throw new Error("media devices are unavailable: open the page over https or on localhost");
    const stream = await withTimeout(navigator.mediaDevices.getUserMedia({ audio: audioConstraints() }), 20000, "microphone permission");
    return stream.getAudioTracks()[0];
  }

  async function getCam() {
    const video = ui.cam.value ? { deviceId: { exact: ui.cam.value } } : true;
    const stream = await withTimeout(navigator.mediaDevices.getUserMedia({ video }), 20000, "camera permission");
    return stream.getVideoTracks()[0];
  }

  function localStream() {
    const tracks = [local.micTrack, local.camTrack].filter(Boolean);
    local.stream = new MediaStream(tracks);
    ui.selfVideo.srcObject = local.camTrack ? new MediaStream([local.camTrack]) : null;
    attachMeter("local", local.micTrack ? new MediaStream([local.micTrack]) : null);
    return local.stream;
  }

  async function refreshDevices() {
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

  function renderToggles() {
    ui.micToggle.textContent = local.micOn ? "Mic on" : "Mic off";
    ui.micToggle.setAttribute("aria-pressed", String(local.micOn));
    ui.camToggle.textContent = local.camOn ? "Cam on" : "Cam off";
    ui.camToggle.setAttribute("aria-pressed", String(local.camOn));
  }

  // ---------------------------------------------------------------- the session
  let session = null;

  class Session {
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
      if (!this.statsTimer) this.statsTimer = setInterval(() => this.updateStats(), 1000);
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
        case "bot-started-speaking": say("system", "bot started speaking"); botBubble = null; break;
        case "bot-stopped-speaking": say("system", "bot stopped speaking"); botBubble = null; break;
        case "bot-interrupted": say("system", "bot interrupted"); botBubble = null; break;
        case "user-transcription":
          if (d.text) say("user", d.text, { pending: !d.final });
          break;
        // bot-output carries each spoken sentence once (bot-tts-text repeats it: not shown);
        // bot-transcription is the pre-2.2 name of the same thing.
        case "bot-output":
        case "bot-transcription":
          if (d.text) say("bot", (botBubble ? " " : "") + d.text, { append: true });
          break;
        case "bot-llm-started": botBubble = null; break;
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

    updateStats() {
      if (!this.pc) return;
      this.pc.getStats().then((report) => {
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
          const prev = this.lastBytes[key];
          if (prev && bytes !== undefined && t > prev.t) row.kbps = Math.round(((bytes - prev.bytes) * 8) / (t - prev.t));
          this.lastBytes[key] = { bytes, t };
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
        this.renderStats(rows);
      }).catch(() => {});
    }

    renderStats(rows) {
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
      setBotReady(false);
      if (isError) showError(reason);
      else if (reason) logLine("info", reason);
      setState(isError ? "error" : "disconnected");
      if (session === this) session = null;
    }
  }

  // ---------------------------------------------------------------- UI actions
  async function connect() {
    if (session) return;
    showError("");
    stats.connectToReadyMs = null;
    stats.localOnsets.length = 0;
    stats.remoteOnsets.length = 0;
    stats.remoteAudioPeak = 0;
    stats.localAudioPeak = 0;
    ui.timing.textContent = "";
    audioContext();  // inside the click: allowed to start
    const s = new Session();
    session = s;
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
    if (session) session.stop("disconnected by you");
  }

  async function setMic(on) {
    local.micOn = on;
    renderToggles();
    if (!session) return;
    if (on && !local.micTrack) {
      try {
        local.micTrack = await getMic();
        localStream();
        await session.pc.getTransceivers()[0].sender.replaceTrack(local.micTrack);
      } catch (err) {
        showError(describeMediaError(err, "Microphone"));
        local.micOn = false;
        renderToggles();
        return;
      }
    }
    if (local.micTrack) local.micTrack.enabled = on;
    session.sendTrackStatus(0, on);
  }

  async function setCam(on) {
    local.camOn = on;
    renderToggles();
    if (!session) return;
    if (on && !local.camTrack) {
      try {
        local.camTrack = await getCam();
        localStream();
        await session.pc.getTransceivers()[1].sender.replaceTrack(local.camTrack);
      } catch (err) {
        showError(describeMediaError(err, "Camera"));
        local.camOn = false;
        renderToggles();
        return;
      }
    }
    if (local.camTrack) local.camTrack.enabled = on;
    session.sendTrackStatus(1, on);
  }

  async function switchDevice(kind) {
    if (!session || !session.pc) return;
    try {
      if (kind === "audio" && local.micTrack) {
        const track = await getMic();
        track.enabled = local.micOn;
        local.micTrack.stop();
        local.micTrack = track;
        await session.pc.getTransceivers()[0].sender.replaceTrack(track);
      } else if (kind === "video" && local.camTrack) {
        const track = await getCam();
        track.enabled = local.camOn;
        local.camTrack.stop();
        local.camTrack = track;
        await session.pc.getTransceivers()[1].sender.replaceTrack(track);
      }
      localStream();
      logLine("info", `switched ${kind === "audio" ? "microphone" : "camera"}`);
    } catch (err) {
      showError(describeMediaError(err, kind === "audio" ? "Microphone" : "Camera"));
    }
  }

  async function sendFromBox() {
    if (!session) return;
    const kind = ui.sendKind.value;
    let data;
    const raw = ui.sendBody.value.trim();
    try {
      data = raw ? JSON.parse(raw) : null;
    } catch (err) {
      showError(`The message is not valid JSON: ${err.message}`);
      return;
    }
    showError("");
    try {
      if (kind === "raw") {
        session.sendRaw(data);
      } else if (kind === "message") {
        session.sendRtvi("client-message", { t: ui.sendType.value, d: data });
      } else {
        const answer = await session.request(ui.sendType.value, data);
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
  ui.sendKind.addEventListener("change", () => { ui.sendTypeRow.hidden = ui.sendKind.value === "raw"; });
  ui.clearLog.addEventListener("click", () => { ui.log.innerHTML = ""; });
  window.addEventListener("beforeunload", () => { if (session) session.stop(""); });

  const params = new URLSearchParams(location.search);
  if (params.get("mode")) ui.mode.value = params.get("mode");
  if (params.get("server")) ui.base.value = params.get("server");
  if (params.get("audioCodec")) ui.audioCodec.value = params.get("audioCodec");
  if (params.get("processing") === "0") ui.processing.checked = false;
  renderToggles();

  window.__app = {
    connect, disconnect, setMic, setCam,
    request: (t, d, timeoutMs) => session ? session.request(t, d, timeoutMs) : Promise.reject(new Error("not connected")),
    send: (obj) => session && session.sendRaw(obj),
    forceIceRestart: () => session && session.attemptReconnection(true),
  };
})();
