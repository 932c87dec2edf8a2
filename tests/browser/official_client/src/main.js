// The official Pipecat JS client against pipeline-run, driven by tests/browser/test_official_client.py.
// WavMediaManager: the default DailyMediaManager downloads code from the internet at run time.
import { PipecatClient } from "@pipecat-ai/client-js";
import { SmallWebRTCTransport, WavMediaManager } from "@pipecat-ai/small-webrtc-transport";

const state = {
  client: null, transport: null, level: 0, peak: 0, states: [], offers: [], answers: [], trackStatus: [],
  metrics: [], botOutput: [], botTtsText: [],
};
window.__official = state;

// Record signalling bodies so the test can check what was negotiated. The client may call
// fetch with a Request object or with (url, init): read the method and body from either.
const realFetch = window.fetch.bind(window);
window.fetch = async (input, init = {}) => {
  const request = input instanceof Request ? input : null;
  const method = (init.method || (request && request.method) || "GET").toUpperCase();
  let body = typeof init.body === "string" ? init.body : null;
  if (body === null && request && method !== "GET") body = await request.clone().text();
  const response = await realFetch(input, init);
  if (method === "POST" && body && body.includes('"sdp"')) {
    state.offers.push(JSON.parse(body));
    try {
      state.answers.push(await response.clone().json());
    } catch (_) {
      // not JSON: the test will report the missing answer
    }
  }
  return response;
};

function meter(track) {
  const ctx = new AudioContext();
  const stream = new MediaStream([track]);
  const audio = new Audio();
  audio.srcObject = stream; // Chrome feeds remote audio to WebAudio only while an element plays it
  audio.play().catch(() => {});
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    state.level = Math.sqrt(sum / buf.length);
    state.peak = Math.max(state.peak, state.level);
  }, 10);
}

// shape: "webrtcRequestParams" | "webrtcUrl" | "start"
window.officialConnect = async ({ shape, base, audioCodec }) => {
  const transport = new SmallWebRTCTransport({ mediaManager: new WavMediaManager() });
  if (audioCodec) transport.setAudioCodec(audioCodec);
  const client = new PipecatClient({
    transport,
    enableMic: true,
    enableCam: false,
    callbacks: {
      onTransportStateChanged: (s) => state.states.push(s),
      onMetrics: (data) => state.metrics.push(data),
      onBotOutput: (data) => state.botOutput.push(data),
      onBotTtsText: (data) => state.botTtsText.push(data),
      onTrackStarted: (track, participant) => {
        if (track.kind === "audio" && !(participant && participant.local)) meter(track);
      },
    },
  });
  state.client = client;
  state.transport = transport;
  const t0 = performance.now();
  let ready;
  if (shape === "webrtcRequestParams") {
    ready = await client.connect({ webrtcRequestParams: { endpoint: `${base}/api/offer` } });
  } else if (shape === "webrtcUrl") {
    ready = await client.connect({ webrtcUrl: `${base}/api/offer` });
  } else if (shape === "start") {
    ready = await client.startBotAndConnect({ endpoint: `${base}/start`, requestData: { transport: "webrtc" } });
  } else {
    throw new Error(`unknown shape ${shape}`);
  }
  return { botReady: ready, connectMs: Math.round(performance.now() - t0) };
};

window.officialRequest = (t, d) => state.client.sendClientRequest(t, d, 5000);

window.officialSendText = (content, options) => state.client.sendText(content, options);

window.officialMic = (on) => state.client.enableMic(on);

window.officialAudioCodec = async () => {
  const report = await state.transport.pc.getStats();
  let codec = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio" && s.codecId) {
      const c = report.get(s.codecId);
      if (c) codec = `${c.mimeType}/${c.clockRate}`;
    }
  });
  return codec;
};

window.officialDisconnect = async () => {
  if (state.client) await state.client.disconnect();
};
