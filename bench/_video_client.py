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

import sys
import time
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # for tests.e2e.video_pattern
from _client import ProtocolSession, client_main  # noqa: E402

from tests.e2e.video_pattern import PatternTrack, Received, decode_id, first_arrivals, frame_luma  # noqa: E402


class VideoSession(ProtocolSession):
    """One peer connection: pattern camera out, transformed video back."""

    consume_kind = "video"
    track_status = ((0, False), (1, True))  # microphone off, camera on

    def __init__(self, url: str, index: int, framerate: float = 30.0) -> None:
        super().__init__(url)
        self.index = index
        self.camera = PatternTrack(framerate=framerate)
        self.received: list[Received] = []

    def add_transceivers(self, pc: RTCPeerConnection) -> None:
        pc.addTransceiver("audio", direction="sendrecv")  # microphone off
        pc.addTransceiver(self.camera, direction="sendrecv")

    async def consume(self, track: MediaStreamTrack) -> None:
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
        """Stop tasks, close the peer connection and the camera."""
        await super().close()
        self.camera.stop()


def main(argv: list[str] | None = None) -> None:
    """Command line entry: pattern-camera sessions."""
    client_main(__doc__.split("\n", 1)[0], VideoSession, default_stagger=0.2, settle_s=2.0, tail_s=0.0, argv=argv)


if __name__ == "__main__":
    main()
