"""Echo-benchmark client: N SmallWebRTC sessions speaking the protocol like the JS client.

Each session (PROTOCOL.md §2-§3, §6.2): aiortc peer connection with audio ``sendrecv`` +
video ``sendrecv`` transceivers (in that order) and an ordered ``chat`` data channel; POST
``{sdp, type, pc_id: null, restart_pc: false}`` to the offer URL; apply the answer; on channel
open send ``trackStatus`` for indexes 0 and 1, ``ping: <ms>`` every second and RTVI
``client-ready``; wait for ``bot-ready``. The offer carries its candidates inline (aiortc
gathers before it answers ``setLocalDescription``), so no PATCH is needed.

The microphone is :class:`ToneMic`: silence with a 1 kHz, 100 ms burst every second. Received
audio is timestamped at ``recv()`` return; echo RTT = burst onset received - burst onset sent.

Run by ``webrtc_echo.py`` as a subprocess (JSON lines on stdout, ``go`` on stdin), or alone:

    python bench/_client.py --url http://127.0.0.1:7860/api/offer --sessions 1 --duration 5 --no-wait
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy

from runner.webrtc.ice import restrict_host_addresses

LOOPBACK = ["127.0.0.1"]
RATE = 48000
PTIME = 0.020
SAMPLES = int(RATE * PTIME)


# ---------------------------------------------------------------- loopback ICE


def restrict_to_loopback(pc: RTCPeerConnection) -> None:
    """Gather only loopback host candidates on ``pc`` (aioice skips loopback by default)."""
    restrict_host_addresses(pc, LOOPBACK)


# ---------------------------------------------------------------- microphone


def _pcm(amplitude: float, freq: float) -> bytes:
    n = np.arange(SAMPLES)
    wave = amplitude * 32767 * np.sin(2 * np.pi * freq * n / RATE)
    return wave.astype("<i2").tobytes()


class ToneMic(MediaStreamTrack):
    """20 ms mono 48 kHz frames, paced in real time: silence plus periodic tone bursts."""

    kind = "audio"

    def __init__(self, period: float = 1.0, burst: float = 0.1, freq: float = 1000.0, amplitude: float = 0.5) -> None:
        super().__init__()
        self.period_frames = round(period / PTIME)
        self.burst_frames = max(1, round(burst / PTIME))
        self.onsets: list[float] = []  # monotonic time the first frame of each burst left recv()
        self._tone = _pcm(amplitude, freq)  # 1 kHz: a whole number of cycles per frame
        self._silence = bytes(2 * SAMPLES)
        self._index = 0
        self._start: float | None = None
        self._time_base = fractions.Fraction(1, RATE)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._index * PTIME - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        phase = self._index % self.period_frames
        frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(self._tone if phase < self.burst_frames else self._silence)
        frame.sample_rate = RATE
        frame.pts = self._index * SAMPLES
        frame.time_base = self._time_base
        self._index += 1
        if phase == 0:
            self.onsets.append(time.monotonic())
        return frame


# ---------------------------------------------------------------- one session


@dataclass
class SessionStats:
    """What one session measured."""

    index: int
    offer_answer_ms: float = float("nan")
    answer_ready_ms: float = float("nan")
    rx_frames: list[tuple[float, float]] = field(default_factory=list)  # (recv time, duration s)
    rx_onsets: list[float] = field(default_factory=list)


class ProtocolSession:
    """One peer connection speaking the SmallWebRTC protocol like the JS client.

    Subclasses choose the transceivers' sources (:meth:`add_transceivers`), which receiver
    indexes they report enabled (``track_status``), which remote track they read
    (``consume_kind``) and how (:meth:`consume`).
    """

    consume_kind = "audio"
    track_status: tuple[tuple[int, bool], ...] = ((0, True), (1, True))

    def __init__(self, url: str) -> None:
        self.url = url
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.bot_ready = asyncio.Event()
        self.pc_id: str | None = None
        self.answer_hosts: list[str] = []
        self.offer_answer_ms = float("nan")
        self.answer_ready_ms = float("nan")
        self.error: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready_id = uuid.uuid4().hex[:8]

    def add_transceivers(self, pc: RTCPeerConnection) -> None:
        """Audio then video transceiver, both ``sendrecv`` (mids 0 and 1)."""
        raise NotImplementedError

    async def consume(self, track: MediaStreamTrack) -> None:
        """Read the bot's ``consume_kind`` track."""
        raise NotImplementedError

    def metrics(self, start: float, end: float) -> dict[str, Any]:
        """What this session measured in the window [start, end)."""
        raise NotImplementedError

    async def connect(self, http: aiohttp.ClientSession, wait_s: float = 30.0) -> None:
        """Offer, answer, data-channel handshake, ``bot-ready``."""
        pc = self.pc
        self.add_transceivers(pc)
        channel = pc.createDataChannel("chat", ordered=True)
        opened = asyncio.Event()
        channel.on("open", opened.set)
        channel.on("message", self._on_message)
        pc.on("track", self._on_track)
        restrict_to_loopback(pc)
        await pc.setLocalDescription(await pc.createOffer())
        body = {"sdp": pc.localDescription.sdp, "type": "offer", "pc_id": None, "restart_pc": False}
        t0 = time.monotonic()
        async with http.post(self.url, json=body) as resp:
            if resp.status != 200:
                raise RuntimeError(f"offer -> HTTP {resp.status}: {(await resp.text())[:200]}")
            answer = await resp.json()
        t1 = time.monotonic()
        self.offer_answer_ms = (t1 - t0) * 1000.0
        self.pc_id = answer.get("pc_id")
        self.answer_hosts = sorted(
            {line.split()[4] for line in answer["sdp"].splitlines() if line.startswith("a=candidate:")}
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        await asyncio.wait_for(opened.wait(), wait_s)
        for index, enabled in self.track_status:
            status = {"type": "trackStatus", "receiver_index": index, "enabled": enabled}
            channel.send(json.dumps({"type": "signalling", "message": status}, separators=(",", ":")))
        self._tasks.append(asyncio.create_task(self._ping(channel)))
        about = {"library": "pipeline-run-bench", "library_version": "0.1.0", "platform": "python-aiortc"}
        ready = {"label": "rtvi-ai", "type": "client-ready", "data": {"version": "2.1.0", "about": about}}
        channel.send(json.dumps({**ready, "id": self._ready_id}, separators=(",", ":")))
        await asyncio.wait_for(self.bot_ready.wait(), wait_s)
        self.answer_ready_ms = (time.monotonic() - t1) * 1000.0

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            return
        with contextlib.suppress(ValueError):
            data = json.loads(message)
            if isinstance(data, dict) and data.get("label") == "rtvi-ai" and data.get("type") == "bot-ready":
                self.bot_ready.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == self.consume_kind:
            self._tasks.append(asyncio.create_task(self.consume(track)))

    async def _ping(self, channel: Any) -> None:
        while channel.readyState == "open":
            channel.send(f"ping: {int(time.time() * 1000)}")
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        """Stop tasks and close the peer connection (the server sees a DTLS close)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()


class EchoSession(ProtocolSession):
    """Tone-burst microphone out, the bot's audio back: echo RTT per burst."""

    def __init__(self, url: str, index: int, threshold: float = 0.1) -> None:
        super().__init__(url)
        self.stats = SessionStats(index)
        self.mic = ToneMic()
        self.threshold = int(threshold * 32767)
        self._in_burst = False
        self._quiet = 0

    def add_transceivers(self, pc: RTCPeerConnection) -> None:
        pc.addTransceiver(self.mic, direction="sendrecv")
        pc.addTransceiver("video", direction="sendrecv")

    async def connect(self, http: aiohttp.ClientSession, wait_s: float = 30.0) -> None:
        await super().connect(http, wait_s)
        self.stats.offer_answer_ms = self.offer_answer_ms
        self.stats.answer_ready_ms = self.answer_ready_ms

    def metrics(self, start: float, end: float) -> dict[str, Any]:
        return session_metrics(self, start, end)

    async def consume(self, track: MediaStreamTrack) -> None:
        """Drain the bot's audio, noting arrival times and burst onsets."""
        quiet_to_rearm = 3  # 60 ms of silence ends a burst
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            if not isinstance(frame, av.AudioFrame):
                continue
            pcm = frame.to_ndarray().reshape(-1)
            channels = len(frame.layout.channels)
            rate = frame.sample_rate or RATE
            self.stats.rx_frames.append((now, frame.samples / rate))
            loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > self.threshold)
            if loud.size:
                self._quiet = 0
                if not self._in_burst:
                    self._in_burst = True
                    self.stats.rx_onsets.append(now + (int(loud[0]) // channels) / rate)
            else:
                self._quiet += 1
                if self._quiet >= quiet_to_rearm:
                    self._in_burst = False


def session_metrics(session: EchoSession, start: float, end: float, period: float = 1.0) -> dict[str, Any]:
    """RTTs of bursts sent in [start, end) and continuity of audio received in the window."""
    sent = [t for t in session.mic.onsets if start <= t < end]
    rtts: list[float] = []
    for onset in sent:
        echoes = [r for r in session.stats.rx_onsets if onset < r < onset + period]
        if echoes:
            rtts.append((echoes[0] - onset) * 1000.0)
    frames = [(t, d) for t, d in session.stats.rx_frames if start <= t < end]
    received = sum(d for _, d in frames)
    gaps = [b[0] - a[0] for a, b in zip(frames, frames[1:], strict=False)]
    return {
        "index": session.stats.index,
        "pc_id": session.pc_id,
        "answer_hosts": session.answer_hosts,
        "offer_answer_ms": session.stats.offer_answer_ms,
        "answer_ready_ms": session.stats.answer_ready_ms,
        "error": session.error,
        "bursts_sent": len(sent),
        "rtt_ms": rtts,
        "rx_seconds": received,
        "continuity": received / (end - start) if end > start else float("nan"),
        "gaps_over_100ms": sum(1 for g in gaps if g > 0.1),
        "max_gap_ms": max(gaps, default=float("nan")) * 1000.0,
    }


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def drive(
    conns: Sequence[ProtocolSession], duration: float, wait_go: bool, stagger: float, *, settle_s: float, tail_s: float
) -> None:
    """Connect ``conns`` (staggered), wait for ``go`` on stdin (or ``settle_s``), measure
    ``duration`` s, wait ``tail_s`` for media still in flight, print JSON lines."""
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def one(s: ProtocolSession, delay: float) -> None:
            await asyncio.sleep(delay)
            try:
                await s.connect(http)
            except Exception as exc:
                s.error = f"{type(exc).__name__}: {exc}"

        await asyncio.gather(*(one(s, i * stagger) for i, s in enumerate(conns)))
    _emit({"event": "ready", "sessions": len(conns), "connected": sum(1 for s in conns if s.error is None)})
    if wait_go:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            for s in conns:
                await s.close()
            return
    else:
        await asyncio.sleep(settle_s)
    cpu0, start = _cpu_seconds(), time.monotonic()
    await asyncio.sleep(duration)
    cpu1, end = _cpu_seconds(), time.monotonic()
    await asyncio.sleep(tail_s)
    result = {
        "event": "result",
        "window_s": end - start,
        "client_cpu_s": cpu1 - cpu0,
        "sessions": [s.metrics(start, end) for s in conns],
    }
    for s in conns:
        await s.close()
    _emit(result)


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def client_main(
    description: str,
    make_session: Callable[[str, int], ProtocolSession],
    *,
    default_stagger: float,
    settle_s: float,
    tail_s: float,
    argv: list[str] | None = None,
) -> None:
    """The command line both bench clients share (run by the benchmarks as a subprocess)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True, help="offer URL, e.g. http://127.0.0.1:7860/api/offer")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0, help="measured window, seconds")
    parser.add_argument("--stagger", type=float, default=default_stagger, help="seconds between session starts")
    parser.add_argument("--no-wait", action="store_true", help="start measuring without waiting for 'go'")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    conns = [make_session(args.url, i) for i in range(args.sessions)]
    asyncio.run(drive(conns, args.duration, not args.no_wait, args.stagger, settle_s=settle_s, tail_s=tail_s))


def main(argv: list[str] | None = None) -> None:
    """Command line entry: echo sessions (echoes of the last bursts get 1 s to arrive)."""
    client_main(__doc__.split("\n", 1)[0], EchoSession, default_stagger=0.05, settle_s=1.0, tail_s=1.0, argv=argv)


if __name__ == "__main__":
    main()
