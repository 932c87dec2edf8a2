"""Video end to end: a real server and a real aiortc peer whose camera sends an id pattern.

The peer's camera is :class:`~tests.e2e.video_pattern.PatternTrack` (a white rectangle with a
frame id in the corner); what comes back is checked for the transform, its size, its frame
rate, and (with a deliberately slow processor) that frames are dropped rather than queued.
Loopback only: no ICE servers, 127.0.0.1 candidates.

Nothing here measures wall-clock time (the machine may be loaded): the frame rate is read
from the media timestamps the bot put on the wire, the slow processor is slow in frames
(busy until more pictures have arrived) rather than in seconds, and windows are counts of
frames. Latency figures are printed only; the video benchmark measures them.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter, deque
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np
import pytest
import yaml
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from runner.build import make_bot
from runner.frames import Frame, FrameDirection, ImageRawFrame, InputImageRawFrame, OutputImageRawFrame
from runner.params import TransportParams
from runner.pipeline import Pipeline, PipelineParams, PipelineTask
from runner.plugins import PluginRegistry
from runner.processors.base import DOWNSTREAM, FrameProcessor
from runner.processors.queue import Overflow
from runner.server import BotFactory, SessionInfo
from runner.spec import Spec
from runner.spec.loader import parse_spec
from runner.webrtc import SmallWebRTCConnection, SmallWebRTCTransport
from tests.e2e.video_pattern import (
    HEIGHT,
    RECT,
    WIDTH,
    PatternTrack,
    Received,
    decode_id,
    first_arrivals,
    frame_luma,
    latency_of,
)
from tests.support.peer import TestPeer
from tests.support.server import start_test_server

ROOT = Path(__file__).resolve().parents[2]

VIDEO_SPEC = ROOT / "pipelines" / "video-transform.yaml"
#: the slow processor stays busy with a picture until this many more have reached it
WORK_FRAMES = 5


# ---------------------------------------------------------------- specs and bots


def video_spec(processors: list[dict[str, Any]] | None = None) -> Spec:
    """``pipelines/video-transform.yaml`` with loopback ICE (and other processors if given)."""
    data = yaml.safe_load(VIDEO_SPEC.read_text())
    data.setdefault("ice", {})["host_addresses"] = ["127.0.0.1"]
    data["ice"]["servers"] = []
    if processors is not None:
        data["processors"] = processors
    return parse_spec(yaml.safe_dump(data, sort_keys=False), PluginRegistry.discover(), file=str(VIDEO_SPEC))


class SlowPassThrough(FrameProcessor):
    """Test-only: busy with each picture until ``WORK_FRAMES`` more have arrived, then passes it on.

    One-frame queue dropping the oldest: when pictures come faster than it works, the stale
    ones are skipped instead of piling up. Slow in frames, not seconds: the same on any machine.
    """

    queue_size: ClassVar[int] = 1
    queue_overflow: ClassVar[Overflow] = "drop_oldest"
    queued_frames = (ImageRawFrame,)

    def __init__(self) -> None:
        super().__init__(name="slow")
        self.arrived = 0
        self.handled = 0
        #: for each picture taken up: how many had arrived after it (0: it was the newest)
        self.newer_when_taken: list[int] = []
        self._recent: deque[tuple[InputImageRawFrame, int]] = deque(maxlen=8)
        self._arrival = asyncio.Event()

    async def queue_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        if direction is DOWNSTREAM and isinstance(frame, InputImageRawFrame):
            self.arrived += 1
            self._recent.append((frame, self.arrived))
            self._arrival.set()
        await super().queue_frame(frame, direction)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is DOWNSTREAM and isinstance(frame, InputImageRawFrame):
            number = next(n for f, n in self._recent if f is frame)
            self.newer_when_taken.append(self.arrived - number)
            while self.arrived < number + WORK_FRAMES:
                self._arrival.clear()
                await self._arrival.wait()
            self.handled += 1
            out = OutputImageRawFrame(image=frame.image, size=frame.size, format=frame.format)
            await self.push_frame(out, direction)
            return
        await self.push_frame(frame, direction)


def slow_bot(seen: list[FrameProcessor]) -> BotFactory:
    """A hand-built camera -> slow pass-through -> video out session (no entry points)."""

    async def bot(connection: SmallWebRTCConnection, session: SessionInfo) -> None:
        params = TransportParams(
            video_in_enabled=True,
            video_in_format="RGB",
            video_in_framerate=30,
            video_out_enabled=True,
            video_out_width=WIDTH,
            video_out_height=HEIGHT,
            video_out_framerate=30,
        )
        transport = SmallWebRTCTransport(webrtc_connection=connection, params=params)
        slow = SlowPassThrough()
        seen.extend([transport.input(), slow])
        task = PipelineTask(Pipeline([transport.input(), slow, transport.output()]), params=PipelineParams())

        @transport.event_handler("on_client_closed")
        async def _closed(_transport: SmallWebRTCTransport, _connection: SmallWebRTCConnection) -> None:
            await task.cancel("client closed")

        await task.run()

    return bot


# ---------------------------------------------------------------- the peer


class VideoPeer(TestPeer):
    """TestPeer whose camera sends the id pattern and which records every frame it receives."""

    __test__ = False

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.camera = PatternTrack()
        self.received: list[Received] = []
        #: media timestamp (90 kHz RTP clock) of each received frame, in ``received`` order
        self.pts: list[int] = []
        self.last_frame: av.VideoFrame | None = None

    def _build_pc(self) -> RTCPeerConnection:
        pc = super()._build_pc()
        pc.getTransceivers()[1].sender.replaceTrack(self.camera)

        @pc.on("track")
        def _on_video(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self._spawn(self._read_video(track))

        return pc

    async def _read_video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                now = time.monotonic()
                self.last_frame = frame
                self.received.append(Received(now, frame.width, frame.height, decode_id(frame_luma(frame))))
                self.pts.append(int(frame.pts or 0))

    async def wait_video(self, frames: int, within: float = 20.0, *, decoded: bool = False) -> None:
        """Wait until ``frames`` frames (with a readable id, if ``decoded``) have come back."""
        deadline = time.monotonic() + within
        while sum(1 for r in self.received if r.frame_id is not None or not decoded) < frames:
            if time.monotonic() > deadline:
                ids = sum(1 for r in self.received if r.frame_id is not None)
                raise TimeoutError(f"only {len(self.received)} video frames back ({ids} with an id)")
            await asyncio.sleep(0.05)

    async def next_frames(self, count: int, within: float = 30.0) -> tuple[list[Received], list[int]]:
        """The next ``count`` frames received (and their media timestamps)."""
        start = len(self.received)
        await self.wait_video(start + count, within)
        return self.received[start : start + count], self.pts[start : start + count]

    def last_rgb(self) -> np.ndarray:
        """The latest received picture as RGB."""
        assert self.last_frame is not None
        rgb: np.ndarray = self.last_frame.to_ndarray(format="rgb24")
        return rgb


async def connect(peer: VideoPeer) -> None:
    """Offer, data channel, RTVI handshake."""
    await peer.connect()
    await peer.wait_open()
    await peer.wait_rtvi("bot-ready", peer.send_client_ready(), within=15)


def assert_media_rate(pts: list[int], framerate: int) -> None:
    """The timestamps sit on the frame grid of ``framerate`` (to a tick of rounding), in order,
    and most often one period apart."""
    period = 90000 / framerate
    offsets = [(p - pts[0]) % 2**32 for p in pts]  # RTP timestamps wrap
    slots = [round(offset / period) for offset in offsets]
    assert all(abs(offset - slot * period) <= 1 for offset, slot in zip(offsets, slots, strict=True)), offsets
    steps = [b - a for a, b in pairwise(slots)]
    assert steps and all(step > 0 for step in steps), steps
    assert Counter(steps).most_common(1)[0][0] == 1, steps


def luma(rgb: np.ndarray) -> np.ndarray:
    """Float luminance of an RGB array."""
    out: np.ndarray = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return out


# ---------------------------------------------------------------- tests


@pytest.mark.timeout(90)
async def test_edges_come_back_at_the_configured_size_and_rate() -> None:
    spec = video_spec([{"id": "edges", "type": "video.edges", "mode": "edges"}])
    server = await start_test_server(make_bot(spec))
    try:
        peer = VideoPeer(server.url)
        async with peer:
            await connect(peer)
            await peer.wait_video(20, decoded=True)
            frames, pts = await peer.next_frames(60)
            picture = luma(peer.last_rgb())
    finally:
        await server.runner.cleanup()

    ids = first_arrivals(frames)
    secs = (frames[-1].at - frames[0].at) or 1.0
    print(f"\nedges: {len(frames) / secs:.1f} fps received, {len(ids)} distinct ids in {len(frames)} frames")
    assert {(r.width, r.height) for r in frames} == {(spec.transport.video_out_width, spec.transport.video_out_height)}
    assert_media_rate(pts, spec.transport.video_out_framerate)
    assert len(ids) >= 5  # the pattern went through the server and its id survived the transform

    x0, y0, x1, y1 = RECT
    edge_rows = picture[y0 - 3 : y0 + 3, x0 + 40 : x1 - 40].max(axis=0)
    edge_cols = picture[y0 + 40 : y1 - 40, x0 - 3 : x0 + 3].max(axis=1)
    inside = picture[y0 + 30 : y1 - 30, x0 + 30 : x1 - 30]
    outside = picture[y1 + 30 : HEIGHT - 20, 40 : WIDTH - 40]
    print(
        f"edges: border {edge_rows.mean():.0f}/{edge_cols.mean():.0f}, inside {inside.mean():.1f}, "
        f"outside {outside.mean():.1f}"
    )
    assert edge_rows.mean() > 120 and edge_cols.mean() > 120  # bright outline along the rectangle
    assert inside.mean() < 30 and outside.mean() < 30  # flat areas (white or black) are dark


@pytest.mark.timeout(90)
async def test_video_transform_spec_draws_green_edges_over_the_picture() -> None:
    spec = video_spec()
    server = await start_test_server(make_bot(spec))
    try:
        peer = VideoPeer(server.url)
        async with peer:
            await connect(peer)
            await peer.wait_video(60)  # the picture settles after the first key frames
            frames, pts = await peer.next_frames(60)
            rgb = peer.last_rgb().astype(np.float64)
    finally:
        await server.runner.cleanup()

    secs = (frames[-1].at - frames[0].at) or 1.0
    print(f"\nvideo-transform.yaml: {len(frames) / secs:.1f} fps received")
    assert {(r.width, r.height) for r in frames} == {(WIDTH, HEIGHT)}
    assert_media_rate(pts, spec.transport.video_out_framerate)
    x0, y0, x1, y1 = RECT  # symmetric: the selfie mirror leaves it in place
    band = rgb[y0 + 40 : y1 - 40, x0 - 3 : x0 + 3]  # left border (the right one before mirroring)
    greenness = band[..., 1] - (band[..., 0] + band[..., 2]) / 2
    greenest = band[np.arange(band.shape[0]), greenness.argmax(axis=1)]
    red, green, blue = greenest.mean(axis=0)
    inside = luma(rgb[y0 + 40 : y1 - 60, x0 + 40 : x1 - 60]).mean()
    print(f"video-transform.yaml: border rgb ({red:.0f}, {green:.0f}, {blue:.0f}), inside luma {inside:.0f}")
    assert green > 150 and red < 110 and blue < 110  # green edge drawn along the rectangle
    assert inside > 150  # overlay mode keeps the picture under the edges


@pytest.mark.timeout(90)
async def test_slow_transform_drops_frames_instead_of_queueing_them() -> None:
    seen: list[FrameProcessor] = []
    server = await start_test_server(slow_bot(seen))
    try:
        peer = VideoPeer(server.url)
        async with peer:
            await peer.connect()
            await peer.wait_open()
            await peer.wait_video(3, decoded=True)
            slow = next(p for p in seen if isinstance(p, SlowPassThrough))
            async with asyncio.timeout(60):
                while slow.handled < 15:  # noqa: ASYNC110 - polling a counter another task bumps
                    await asyncio.sleep(0.05)
            frames = list(peer.received)
            sent = dict(peer.camera.sent)
    finally:
        await server.runner.cleanup()

    arrivals = first_arrivals(frames)
    latencies = [lat for r in arrivals if (lat := latency_of(r, sent)) is not None]
    print(
        f"\nslow transform ({WORK_FRAMES} pictures per picture): {slow.arrived} pictures reached it, "
        f"{slow.handled} handled, {len(arrivals)} distinct ids came back; latency median "
        f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms (n={len(latencies)})"
    )
    # never a backlog: every picture it took up was the newest that had reached it ...
    assert slow.newer_when_taken and set(slow.newer_when_taken) == {0}
    # ... because the ones that came while it was busy were dropped, not queued
    assert slow.handled <= slow.arrived // WORK_FRAMES
    ids = [r.frame_id for r in arrivals if r.frame_id is not None]
    assert len(ids) >= 5
    assert all(later - earlier >= WORK_FRAMES for earlier, later in pairwise(ids)), ids  # in order, with gaps
