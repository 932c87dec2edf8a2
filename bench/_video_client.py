"""Video-benchmark client: N SmallWebRTC sessions whose camera sends a frame-id test pattern.

Each session speaks the protocol like the JS client with its microphone off (``_client.py``
has the details): an audio ``sendrecv`` transceiver without a track, a video ``sendrecv``
transceiver carrying the camera (:class:`PatternTrack` from ``tests/e2e/video_pattern.py``:
640x480 at 30 fps, a white rectangle plus a frame id), the ``chat`` data channel with
``trackStatus``, pings and RTVI ``client-ready``, then ``bot-ready``. Every received video
frame is timestamped at ``recv()`` return and its id decoded; latency of a frame = its first
arrival - the time the camera handed it to the encoder (same process, same clock).

Run by ``video_transform.py`` as a subprocess (JSON lines on stdout, ``go`` on stdin), or alone:

    python bench/_video_client.py --url http://127.0.0.1:7860/api/offer --duration 5 --no-wait
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # for tests.e2e.video_pattern
from _client import _cpu_seconds, _emit, restrict_to_loopback  # noqa: E402

from tests.e2e.video_pattern import PatternTrack, Received, decode_id, first_arrivals, frame_luma  # noqa: E402


class VideoSession:
    """One peer connection: pattern camera out, transformed video back."""

    def __init__(self, url: str, index: int, framerate: float = 30.0) -> None:
        self.url = url
        self.index = index
        self.camera = PatternTrack(framerate=framerate)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.received: list[Received] = []
        self.bot_ready = asyncio.Event()
        self.pc_id: str | None = None
        self.answer_hosts: list[str] = []
        self.offer_answer_ms = float("nan")
        self.error: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready_id = uuid.uuid4().hex[:8]

    async def connect(self, http: aiohttp.ClientSession, wait_s: float = 30.0) -> None:
        """Offer, answer, data-channel handshake, ``bot-ready``."""
        pc = self.pc
        pc.addTransceiver("audio", direction="sendrecv")  # microphone off
        pc.addTransceiver(self.camera, direction="sendrecv")
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
        self.offer_answer_ms = (time.monotonic() - t0) * 1000.0
        self.pc_id = answer.get("pc_id")
        self.answer_hosts = sorted(
            {line.split()[4] for line in answer["sdp"].splitlines() if line.startswith("a=candidate:")}
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        await asyncio.wait_for(opened.wait(), wait_s)
        for index, enabled in ((0, False), (1, True)):
            status = {"type": "trackStatus", "receiver_index": index, "enabled": enabled}
            channel.send(json.dumps({"type": "signalling", "message": status}, separators=(",", ":")))
        self._tasks.append(asyncio.create_task(self._ping(channel)))
        about = {"library": "pipeline-run-bench", "library_version": "0.1.0", "platform": "python-aiortc"}
        ready = {"label": "rtvi-ai", "type": "client-ready", "data": {"version": "2.1.0", "about": about}}
        channel.send(json.dumps({**ready, "id": self._ready_id}, separators=(",", ":")))
        await asyncio.wait_for(self.bot_ready.wait(), wait_s)

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            return
        with contextlib.suppress(ValueError):
            data = json.loads(message)
            if isinstance(data, dict) and data.get("label") == "rtvi-ai" and data.get("type") == "bot-ready":
                self.bot_ready.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.create_task(self._consume(track)))

    async def _ping(self, channel: Any) -> None:
        while channel.readyState == "open":
            channel.send(f"ping: {int(time.time() * 1000)}")
            await asyncio.sleep(1.0)

    async def _consume(self, track: MediaStreamTrack) -> None:
        """Note every frame the bot sends: arrival time, size and decoded id."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            if isinstance(frame, av.VideoFrame):
                self.received.append(Received(now, frame.width, frame.height, decode_id(frame_luma(frame))))

    def metrics(self, start: float, end: float) -> dict[str, Any]:
        """What this session saw in the window [start, end)."""
        frames = [r for r in self.received if start <= r.at < end]
        firsts = first_arrivals(frames)
        sent = self.camera.sent
        latencies = [(r.at - sent[r.frame_id]) * 1000.0 for r in firsts if r.frame_id in sent]
        return {
            "index": self.index,
            "pc_id": self.pc_id,
            "error": self.error,
            "answer_hosts": self.answer_hosts,
            "offer_answer_ms": self.offer_answer_ms,
            "sent": sum(1 for t in sent.values() if start <= t < end),
            "rx_frames": len(frames),
            "rx_ids": len(firsts),
            "unreadable": sum(1 for r in frames if r.frame_id is None),
            "sizes": sorted({f"{r.width}x{r.height}" for r in frames}),
            "latency_ms": latencies,
        }

    async def close(self) -> None:
        """Stop tasks and close the peer connection."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()
        self.camera.stop()


async def run(url: str, sessions: int, duration: float, wait_go: bool, stagger: float) -> None:
    """Connect ``sessions`` sessions, (wait for ``go``), measure ``duration`` s, print JSON."""
    loop = asyncio.get_running_loop()
    conns = [VideoSession(url, i) for i in range(sessions)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def one(s: VideoSession, delay: float) -> None:
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
        await asyncio.sleep(2.0)
    cpu0, start = _cpu_seconds(), time.monotonic()
    await asyncio.sleep(duration)
    cpu1, end = _cpu_seconds(), time.monotonic()
    result = {
        "event": "result",
        "window_s": end - start,
        "client_cpu_s": cpu1 - cpu0,
        "sessions": [s.metrics(start, end) for s in conns],
    }
    for s in conns:
        await s.close()
    _emit(result)


def main(argv: list[str] | None = None) -> None:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="offer URL, e.g. http://127.0.0.1:7860/api/offer")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0, help="measured window, seconds")
    parser.add_argument("--stagger", type=float, default=0.2, help="seconds between session starts")
    parser.add_argument("--no-wait", action="store_true", help="start measuring without waiting for 'go'")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    asyncio.run(run(args.url, args.sessions, args.duration, not args.no_wait, args.stagger))


if __name__ == "__main__":
    main()
