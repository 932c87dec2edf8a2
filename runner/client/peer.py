"""Peer-connection plumbing of the client: sender handles, remote-track readers, small helpers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import structlog
from aiortc import MediaStreamTrack, RTCIceServer, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from runner.client.media import AudioConverter

log = structlog.get_logger("runner.client")

KIND_BY_MID = {"0": "audio", "1": "video"}

AudioSink = Callable[[np.ndarray, float], None]
VideoSink = Callable[[av.VideoFrame], None]


class SenderTrack(MediaStreamTrack):
    """A per-peer-connection handle on a source track.

    aiortc stops a sender's track when its peer connection closes (even when the remote side
    closed it), which would kill our source before a restart could reuse it; the handle is
    what gets stopped instead.
    """

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self.source = source

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        return await self.source.recv()


async def retire_pc(pc: RTCPeerConnection | None) -> None:
    """Detach the senders and close ``pc``."""
    if pc is None:
        return
    for transceiver in pc.getTransceivers():
        transceiver.sender.replaceTrack(None)
    try:
        await pc.close()
    except Exception as exc:  # closing must never raise
        log.debug("client_pc_close_failed", error=str(exc))


def ice_server(server: RTCIceServer | dict[str, Any]) -> RTCIceServer:
    if isinstance(server, RTCIceServer):
        return server
    return RTCIceServer(urls=server["urls"], username=server.get("username"), credential=server.get("credential"))


def client_about() -> dict[str, Any]:
    return {"library": "pipeline-run-client", "library_version": "0.1.0", "platform": "python"}


def describe(exc: BaseException, timeout_text: str) -> str:
    if isinstance(exc, TimeoutError):
        return timeout_text
    return str(exc) or type(exc).__name__


def track_kind(pc: RTCPeerConnection, track: MediaStreamTrack) -> str:
    """``audio`` / ``video`` / ``screenVideo`` from the transceiver mid (0, 1, other), like the JS client."""
    mid = next((t.mid for t in pc.getTransceivers() if t.receiver.track is track), None)
    return KIND_BY_MID.get(str(mid), "screenVideo") if mid is not None else track.kind


async def read_remote_track(
    track: MediaStreamTrack,
    *,
    on_started: Callable[[], None],
    on_stopped: Callable[[], None],
    audio_sinks: list[AudioSink],
    video_sinks: list[VideoSink],
) -> None:
    """Drain ``track`` (aiortc queues grow otherwise), feeding the sinks; started = first frame."""
    converter = AudioConverter() if track.kind == "audio" else None
    started = False
    try:
        while True:
            frame = await track.recv()
            if not started:
                started = True
                on_started()
            if isinstance(frame, av.AudioFrame) and converter is not None:
                samples = converter.convert(frame)
                now = time.monotonic()
                for sink in audio_sinks:
                    sink(samples, now)
            elif isinstance(frame, av.VideoFrame):
                for vsink in video_sinks:
                    vsink(frame)
    except MediaStreamError:
        pass
    finally:
        if started:
            on_stopped()
