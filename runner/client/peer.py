"""Peer-connection plumbing of the client: sender handles, remote-track readers, small helpers."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import av
import numpy as np
import structlog
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
)
from aiortc.mediastreams import MediaStreamError

from runner.client import sdp as sdp_tools
from runner.client.media import AudioConverter
from runner.webrtc.ice import restrict_host_addresses

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


def new_client_pc(
    ice_servers: Sequence[RTCIceServer], tracks: Sequence[MediaStreamTrack | None], *, screen: bool = False
) -> tuple[RTCPeerConnection, RTCDataChannel]:
    """A peer connection laid out as the JS client lays it out, and its data channel.

    Transceivers in this order: audio ``sendrecv`` (mic), video ``sendrecv`` (camera) and, with
    ``screen``, video ``sendonly``; then the ordered ``chat`` channel. Each source in ``tracks``
    (same order, None for none) is attached through its own :class:`SenderTrack`.
    """
    config = RTCConfiguration(iceServers=list(ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    pc = RTCPeerConnection(config)
    audio = pc.addTransceiver("audio", direction="sendrecv")
    video = pc.addTransceiver("video", direction="sendrecv")
    senders = [audio.sender, video.sender]
    if screen:
        senders.append(pc.addTransceiver("video", direction="sendonly").sender)
    for sender, track in zip(senders, tracks, strict=False):
        if track is not None:
            sender.replaceTrack(SenderTrack(track))
    return pc, pc.createDataChannel("chat", ordered=True)


async def local_offer(
    pc: RTCPeerConnection,
    *,
    host_addresses: Sequence[str] | None = None,
    audio_codec: str | None = None,
    video_codec: str | None = None,
    trickle: bool = True,
) -> tuple[str, list[dict[str, Any]]]:
    """Make and set ``pc``'s offer; the SDP to POST and the candidates to PATCH (trickle ICE).

    The SDP is codec-filtered like the JS client's ``sdpFilterCodec``; when trickling, its inline
    candidates are taken out and returned in PATCH form (``candidate``, ``sdp_mid``,
    ``sdp_mline_index``).
    """
    if host_addresses:
        restrict_host_addresses(pc, list(host_addresses))
    await pc.setLocalDescription(await pc.createOffer())
    sdp = sdp_tools.filter_codec(pc.localDescription.sdp, "audio", audio_codec)
    sdp = sdp_tools.filter_codec(sdp, "video", video_codec)
    if not trickle:
        return sdp, []
    candidates = [
        {"candidate": text, "sdp_mid": mid, "sdp_mline_index": index}
        for text, mid, index in sdp_tools.candidates_by_section(sdp)
    ]
    return sdp_tools.strip_candidates(sdp), candidates


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
