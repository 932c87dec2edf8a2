"""Client-side helpers for voice tests: eSpeak speech as a mic track, timestamped playback.

``SpeechTrack`` is a real-time paced 20 ms microphone that sends silence until
:meth:`SpeechTrack.play` queues a clip (``speech_pcm`` makes one with the eSpeak plugin's
synthesiser). ``VoicePeer`` is the JS-client look-alike ``TestPeer`` that also keeps the
arrival time of every received audio frame, so tests and benchmarks can measure
voice-to-voice latency and barge-in stop times as the client observes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from runner.audio.resample import AudioNormalizer
from runner.plugins import PluginRegistry
from runner.spec import Spec, load_spec
from runner.webrtc.input import receiver_of, tune_audio_receiver
from tests.support.peer import TestPeer, frame_rms

RATE = 48000
PTIME = 0.02
FRAME_SAMPLES = int(RATE * PTIME)
#: RMS (s16) above which a received 20 ms frame counts as bot speech.
SPEECH_RMS = 300.0
#: RMS below which a received frame counts as silence.
SILENCE_RMS = 60.0
VOICE_SPEC = Path(__file__).resolve().parents[2] / "pipelines" / "voice.yaml"


def load_voice_spec(path: Path = VOICE_SPEC) -> Spec:
    """``pipelines/voice.yaml`` validated, with ICE limited to 127.0.0.1 and no ICE servers."""
    spec = load_spec(path, PluginRegistry.discover())
    ice = spec.ice.model_copy(update={"servers": [], "host_addresses": ["127.0.0.1"]})
    return spec.model_copy(update={"ice": ice})


def speech_pcm(text: str, rate: int = RATE, *, words_per_minute: int = 160) -> bytes:
    """``text`` spoken by eSpeak NG (the ``tts.espeak`` plugin's engine): s16 mono at ``rate``."""
    from pipeline_run_tts_espeak._espeak import EspeakEngine, Voice

    engine = EspeakEngine.shared()
    pcm = engine.synthesize(text, Voice(rate=words_per_minute))
    normalizer = AudioNormalizer(rate, 1, chunk_ms=None)
    return b"".join(normalizer.push_pcm(pcm, engine.sample_rate, 1) + normalizer.flush())


def voiced_bounds(pcm: bytes, rate: int = RATE, threshold: float = 200.0) -> tuple[float, float]:
    """Seconds from the clip's start to its first and past its last 10 ms window above ``threshold`` RMS."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    win = rate // 100
    n = len(samples) // win
    rms = np.sqrt(np.mean(np.square(samples[: n * win].reshape(n, win)), axis=1))
    loud = np.flatnonzero(rms > threshold)
    if loud.size == 0:
        return 0.0, 0.0
    return float(loud[0]) / 100, float(loud[-1] + 1) / 100


@dataclass
class Clip:
    """One queued clip and when (monotonic) its voiced part left the track."""

    pcm: bytes
    voiced_start: float
    voiced_end: float
    started_at: float | None = None
    done: asyncio.Event | None = None

    @property
    def onset(self) -> float:
        """Monotonic time the clip's first voiced sample was sent."""
        assert self.started_at is not None, "clip not played yet"
        return self.started_at + self.voiced_start

    @property
    def speech_end(self) -> float:
        """Monotonic time the clip's last voiced sample was sent."""
        assert self.started_at is not None, "clip not played yet"
        return self.started_at + self.voiced_end


class SpeechTrack(MediaStreamTrack):
    """A paced mono 48 kHz mic: silence, or the clips queued with :meth:`play`."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pts = 0
        self._start: float | None = None
        self._queue: list[Clip] = []
        self._current: Clip | None = None
        self._offset = 0

    def play(self, pcm: bytes) -> Clip:
        """Queue ``pcm`` (s16 mono 48 kHz); await ``clip.done.wait()`` for it to finish."""
        start, end = voiced_bounds(pcm)
        clip = Clip(pcm=pcm, voiced_start=start, voiced_end=end, done=asyncio.Event())
        self._queue.append(clip)
        return clip

    async def recv(self) -> av.AudioFrame:
        """Next 20 ms frame, paced against the monotonic clock."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._pts / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        data = self._next_samples()
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(data, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME_SAMPLES
        return frame

    def _next_samples(self) -> bytes:
        size = FRAME_SAMPLES * 2
        if self._current is None and self._queue:
            self._current = self._queue.pop(0)
            self._offset = 0
            self._current.started_at = time.monotonic()
        clip = self._current
        if clip is None:
            return bytes(size)
        data = clip.pcm[self._offset : self._offset + size]
        self._offset += size
        if self._offset >= len(clip.pcm):
            self._current = None
            if clip.done is not None:
                clip.done.set()
        return data + bytes(size - len(data))


class VoicePeer(TestPeer):
    """``TestPeer`` with a :class:`SpeechTrack` mic and timestamped received audio."""

    def __init__(self, base_url: str, *, low_latency: bool = True, **kwargs: Any) -> None:
        self.speech = SpeechTrack()
        super().__init__(base_url, mic=self.speech, **kwargs)
        self.low_latency = low_latency
        #: (monotonic arrival time, RMS) per received 20 ms audio frame.
        self.heard: list[tuple[float, float]] = []
        #: (monotonic arrival time, message) per received data-channel message.
        self.timed_messages: list[tuple[float, Any]] = []

    def _build_pc(self) -> RTCPeerConnection:
        pc = super()._build_pc()
        channel = self.channel
        assert channel is not None

        @channel.on("message")
        def _stamp(_data: str | bytes) -> None:
            # TestPeer's own handler (registered first) has just parsed and appended it
            self.timed_messages.append((time.monotonic(), self.messages[-1]))

        return pc

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        if self.low_latency:
            # like the server: no 80 ms prefetch in aiortc's jitter buffer (a browser's is adaptive)
            receiver = receiver_of(self.pc if isinstance(self.pc, RTCPeerConnection) else None, track)
            if receiver is not None:
                tune_audio_receiver(receiver)
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                rms = frame_rms(frame)  # type: ignore[arg-type]
                self.audio_frames += 1
                self.audio_levels.append(rms)
                self.heard.append((now, rms))

    async def say(self, text: str, *, lead_secs: float = 0.3, tail_secs: float = 0.3) -> Clip:
        """Queue ``text`` as speech framed by silence; returns at once (the clip plays in real time)."""
        pcm = await asyncio.to_thread(speech_pcm, text)
        lead = bytes(int(lead_secs * RATE) * 2)
        tail = bytes(int(tail_secs * RATE) * 2)
        return self.speech.play(lead + pcm + tail)

    # ------------------------------------------------------------ reading what was heard

    def first_speech_after(self, t: float, min_frames: int = 2) -> float | None:
        """Arrival time of the first of ``min_frames`` consecutive loud frames after ``t``."""
        run = 0
        for index, (at, rms) in enumerate(self.heard):
            if at <= t:
                continue
            run = run + 1 if rms > SPEECH_RMS else 0
            if run >= min_frames:
                return self.heard[index - min_frames + 1][0]
        return None

    def silence_after(self, t: float, hold_secs: float = 0.3) -> float | None:
        """Arrival time of the first frame after ``t`` that starts ``hold_secs`` of silence."""
        start: float | None = None
        for at, rms in self.heard:
            if at <= t:
                continue
            if rms < SILENCE_RMS:
                if start is None:
                    start = at
                if at - start >= hold_secs:
                    return start
            else:
                start = None
        return None

    def loud_frames_between(self, t0: float, t1: float) -> int:
        """How many received frames in ``(t0, t1]`` were bot speech."""
        return sum(1 for at, rms in self.heard if t0 < at <= t1 and rms > SPEECH_RMS)

    async def wait_heard_until(self, t: float, within: float = 10.0) -> None:
        """Wait until audio that arrived after monotonic time ``t`` has been received."""
        deadline = time.monotonic() + within
        while not self.heard or self.heard[-1][0] < t:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no audio received after t={t:.3f}")
            await asyncio.sleep(0.02)

    def rtvi(self, msg_type: str) -> list[dict[str, Any]]:
        """Received RTVI messages of ``msg_type``, in order."""
        return [m for m in self.messages if isinstance(m, dict) and m.get("type") == msg_type]

    def rtvi_texts(self, *msg_types: str) -> list[str]:
        """``data.text`` of the received RTVI messages of any of ``msg_types``."""
        return [str(m.get("data", {}).get("text", "")) for t in msg_types for m in self.rtvi(t)]

    def rtvi_times(self, msg_type: str, after: float = 0.0) -> list[float]:
        """Arrival times of RTVI messages of ``msg_type`` received after ``after``."""
        return [at for at, m in self.timed_messages if at > after and isinstance(m, dict) and m.get("type") == msg_type]


__all__ = [
    "RATE",
    "SILENCE_RMS",
    "SPEECH_RMS",
    "VOICE_SPEC",
    "Clip",
    "SpeechTrack",
    "VoicePeer",
    "load_voice_spec",
    "speech_pcm",
    "voiced_bounds",
]
