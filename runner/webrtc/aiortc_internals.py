"""Every private aiortc/aioice attribute the transport relies on, behind small typed functions.

aiortc has no public API for what latency and safety need here: the receivers' jitter buffers
and codec maps, enabling a receiver, the remote track's frame queue, the sender's running
codec, the ICE gatherer's aioice connection, the SCTP data-channel receive path. Those
accesses live in this module only, and
:func:`check_internals` (run at server start and by the first :class:`SmallWebRTCConnection`)
proves that each of them exists in the installed versions: a renamed attribute fails start-up
with its name and the versions, instead of an ``AttributeError`` at the first call or a limit
that silently stops working. pyproject.toml pins both packages to the tested ranges.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

from aioice import Connection as IceConnection
from aioice.ice import TransportPolicy
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver, RTCSctpTransport
from aiortc import rtcsctptransport as _sctp
from aiortc.codecs import get_encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtp import RtpPacket
from aiortc.utils import random32

# -- the attributes, by owner ---------------------------------------------------------------------

_RECEIVER_JITTER = "_RTCRtpReceiver__jitter_buffer"
_RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
_RECEIVER_STARTED = "_RTCRtpReceiver__started"
_RECEIVER_ENABLED = "_enabled"
_RECEIVER_TRACK = "_track"
_TRACK_QUEUE = "_queue"
_TRANSCEIVER_CODECS = "_codecs"
_SENDER_RTP_TASK = "_RTCRtpSender__rtp_task"
_SENDER_RTP_EXITED = "_RTCRtpSender__rtp_exited"
_SENDER_ENCODER = "_RTCRtpSender__encoder"
_SENDER_STARTED = "_RTCRtpSender__started"
_SENDER_TRACK = "_RTCRtpSender__track"
_SENDER_RUN_RTP = "_run_rtp"
_SENDER_SSRC = "_ssrc"
_GATHERER_CONNECTION = "_connection"
_ICE_POLICY = "_transport_policy"
_DTLS_REGISTER = "_register_rtp_receiver"
_DTLS_UNREGISTER = "_unregister_rtp_receiver"
_PACKET_DATA = "_data"


class InternalsError(RuntimeError):
    """The installed aiortc/aioice lack a private attribute this transport relies on."""


def installed_versions() -> str:
    """``aiortc X, aioice Y`` as installed."""
    parts = []
    for name in ("aiortc", "aioice"):
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} (version unknown)")
    return ", ".join(parts)


def _require(owner: object, attribute: str, what: str) -> None:
    if not hasattr(owner, attribute):
        raise InternalsError(
            f"{what} has no attribute {attribute!r} in the installed {installed_versions()}; "
            "pipeline-run supports the versions pinned in its pyproject.toml"
        )


def _check_on(pc: RTCPeerConnection) -> None:
    try:
        transceiver = pc.addTransceiver("audio", direction="sendrecv")
    except AttributeError as exc:
        versions = installed_versions()
        raise InternalsError(f"aiortc cannot build a transceiver ({exc}) in the installed {versions}") from exc
    receiver, sender = transceiver.receiver, transceiver.sender
    _require(transceiver, _TRANSCEIVER_CODECS, "aiortc RTCRtpTransceiver")
    for attribute in (_RECEIVER_JITTER, _RECEIVER_CODECS, _RECEIVER_STARTED, _RECEIVER_ENABLED, _RECEIVER_TRACK):
        _require(receiver, attribute, "aiortc RTCRtpReceiver")
    if not isinstance(getattr(receiver, _RECEIVER_JITTER), JitterBuffer):
        raise InternalsError(f"aiortc RTCRtpReceiver.{_RECEIVER_JITTER} is not a JitterBuffer ({installed_versions()})")
    _require(JitterBuffer(capacity=16, prefetch=0), "capacity", "aiortc JitterBuffer")
    sender_attributes = (_SENDER_RTP_TASK, _SENDER_RTP_EXITED, _SENDER_ENCODER, _SENDER_STARTED, _SENDER_TRACK)
    for attribute in (*sender_attributes, _SENDER_SSRC):
        _require(sender, attribute, "aiortc RTCRtpSender")
    _require(RTCRtpSender, _SENDER_RUN_RTP, "aiortc RTCRtpSender")
    _require(receiver.transport, _DTLS_REGISTER, "aiortc RTCDtlsTransport")
    _require(receiver.transport, _DTLS_UNREGISTER, "aiortc RTCDtlsTransport")
    gatherer = receiver.transport.transport.iceGatherer
    _require(gatherer, _GATHERER_CONNECTION, "aiortc RTCIceGatherer")
    connection = getattr(gatherer, _GATHERER_CONNECTION)
    _require(connection, _ICE_POLICY, "aioice Connection")
    params = inspect.signature(IceConnection.get_component_candidates).parameters
    if "addresses" not in params:
        raise InternalsError(
            f"aioice Connection.get_component_candidates takes no 'addresses' in the installed {installed_versions()}"
        )
    encoder = get_encoder(RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111))
    _require(encoder, "pack", "aiortc Opus encoder")
    missing = missing_sctp_names()
    if missing:
        raise InternalsError(f"aiortc lacks {', '.join(missing)} in the installed {installed_versions()}")


@functools.cache
def _checked() -> None:
    """Builds a throw-away peer connection once per process (nothing is gathered or sent)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()  # aiortc's sender wants a loop at construction
        try:
            asyncio.set_event_loop(loop)
            _check_on(RTCPeerConnection())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        return
    _check_on(RTCPeerConnection())


def check_internals() -> None:
    """Raise :class:`InternalsError` naming the first private attribute the installed versions lack."""
    _checked()


# -- receivers ------------------------------------------------------------------------------------


def receiver_jitter_buffer(receiver: RTCRtpReceiver) -> Any:
    """The receiver's jitter buffer."""
    return getattr(receiver, _RECEIVER_JITTER)


def set_receiver_jitter_buffer(receiver: RTCRtpReceiver, buffer: JitterBuffer) -> None:
    """Replace one receiver's jitter buffer (an instance attribute: no other receiver changes)."""
    setattr(receiver, _RECEIVER_JITTER, buffer)


def receiver_codecs(receiver: RTCRtpReceiver) -> dict[int, RTCRtpCodecParameters]:
    """Payload type -> codec, as the receiver decodes them (shared, not a copy)."""
    codecs = getattr(receiver, _RECEIVER_CODECS)
    return codecs if isinstance(codecs, dict) else {}


def receiver_started(receiver: RTCRtpReceiver) -> bool:
    """True once aiortc started the receiver (its decoder thread and RTCP task)."""
    return bool(getattr(receiver, _RECEIVER_STARTED))


def set_receiver_enabled(receiver: RTCRtpReceiver, enabled: bool) -> None:
    """A disabled receiver discards RTP packets before the jitter buffer (aiortc resets it per negotiation)."""
    setattr(receiver, _RECEIVER_ENABLED, enabled)


def receiver_enabled(receiver: RTCRtpReceiver) -> bool:
    return bool(getattr(receiver, _RECEIVER_ENABLED))


def receiver_remote_track(receiver: RTCRtpReceiver) -> Any:
    """aiortc's ``RemoteStreamTrack`` of the receiver, or None before the offer named one."""
    return getattr(receiver, _RECEIVER_TRACK, None)


def track_frame_queue(track: Any) -> asyncio.Queue[Any] | None:
    """The queue a remote track's ``recv()`` reads and the decoder thread fills."""
    queue = getattr(track, _TRACK_QUEUE, None)
    return queue if isinstance(queue, asyncio.Queue) else None


def set_track_frame_queue(track: Any, queue: asyncio.Queue[Any]) -> None:
    """Replace that queue (only before the receiver starts: the decoder thread keeps a reference)."""
    setattr(track, _TRACK_QUEUE, queue)


def register_with_router(receiver: RTCRtpReceiver, parameters: RTCRtpReceiveParameters) -> None:
    """Route the receiver's SSRCs and payload types to it without starting it.

    aiortc routes a packet of an unknown SSRC to the one receiver registered for its payload
    type, so an unread m-line must stay registered or its packets would land in the read one.
    """
    getattr(receiver.transport, _DTLS_REGISTER)(receiver, parameters)


def unregister_from_router(receiver: RTCRtpReceiver) -> None:
    getattr(receiver.transport, _DTLS_UNREGISTER)(receiver)


def packet_payload(packet: RtpPacket) -> bytes:
    """The depayloaded codec data aiortc attaches to a packet before the jitter buffer."""
    data = getattr(packet, _PACKET_DATA, b"")
    return data if isinstance(data, bytes) else b""


# -- transceivers and senders -------------------------------------------------------------------


def transceiver_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs the latest negotiation agreed for this transceiver, preferred first."""
    codecs = getattr(transceiver, _TRANSCEIVER_CODECS)
    return list(codecs) if codecs else []


def sender_started(sender: RTCRtpSender) -> bool:
    return bool(getattr(sender, _SENDER_STARTED))


async def restart_sender_codec(sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
    """Make a running sender encode with ``codec`` from now on.

    aiortc fixes a sender's codec when it starts and ignores later negotiations. The RTP loop
    stops the track it holds when it ends, so the track is detached first and re-attached to
    the new loop. The new loop starts a new random sequence, which the client's SRTP replay
    check would reject as old on the same SSRC half of the time, so it gets a new SSRC (a
    new stream, demultiplexed by payload type and MID); the RTCP task stays.
    """
    task = getattr(sender, _SENDER_RTP_TASK)
    if task is None:
        return
    track = getattr(sender, _SENDER_TRACK)
    setattr(sender, _SENDER_TRACK, None)
    exited: asyncio.Event = getattr(sender, _SENDER_RTP_EXITED)
    task.cancel()
    await exited.wait()
    exited.clear()
    setattr(sender, _SENDER_ENCODER, None)
    setattr(sender, _SENDER_SSRC, random32())
    run: Callable[[RTCRtpCodecParameters], Any] = getattr(sender, _SENDER_RUN_RTP)
    setattr(sender, _SENDER_RTP_TASK, asyncio.ensure_future(run(codec)))
    setattr(sender, _SENDER_TRACK, track)


# -- ICE ------------------------------------------------------------------------------------------


def gatherer_ice_connection(gatherer: Any) -> Any:
    """The aioice ``Connection`` an aiortc ``RTCIceGatherer`` gathers with."""
    return getattr(gatherer, _GATHERER_CONNECTION)


def gathers_all_candidates(connection: Any) -> bool:
    """True unless the connection is relay-only (then host addresses are not gathered at all)."""
    return bool(getattr(connection, _ICE_POLICY) == TransportPolicy.ALL)


__all__ = [
    "InternalsError",
    "check_internals",
    "gatherer_ice_connection",
    "gathers_all_candidates",
    "installed_versions",
    "packet_payload",
    "receiver_codecs",
    "receiver_enabled",
    "receiver_jitter_buffer",
    "receiver_remote_track",
    "receiver_started",
    "register_with_router",
    "restart_sender_codec",
    "sender_started",
    "set_receiver_enabled",
    "set_receiver_jitter_buffer",
    "set_track_frame_queue",
    "track_frame_queue",
    "transceiver_codecs",
    "unregister_from_router",
]


# -- the SCTP data-channel receive path -----------------------------------------------------------
#
# aiortc decodes a text (PPID 51) message with a strict ``bytes.decode("utf8")`` and asserts on
# protocol violations (a second DCEP open for a stream) inside the task that runs DTLS; either
# exception ends the whole peer connection before any handler of ours runs. :func:`guard_receive`
# wraps the transport's ``_data_channel_receive`` so a text message that is not UTF-8 is delivered
# as binary (the data-channel link counts it as ``binary_not_utf8``) and any other failure is
# reported to ``on_failure`` instead of propagating.

_RECEIVE = "_data_channel_receive"
_MARK = "_pipeline_run_receive_guarded"

#: The private aiortc names this module relies on (for a start-up check).
SCTP_PRIVATE_NAMES: tuple[str, ...] = (
    f"aiortc.rtcsctptransport.RTCSctpTransport.{_RECEIVE}",
    "aiortc.rtcsctptransport.WEBRTC_STRING",
    "aiortc.rtcsctptransport.WEBRTC_BINARY",
)


def missing_sctp_names() -> list[str]:
    """Which of :data:`SCTP_PRIVATE_NAMES` the installed aiortc lacks (empty when all are there)."""
    missing = []
    if not inspect.iscoroutinefunction(getattr(RTCSctpTransport, _RECEIVE, None)):
        missing.append(SCTP_PRIVATE_NAMES[0])
    for name, full in (("WEBRTC_STRING", SCTP_PRIVATE_NAMES[1]), ("WEBRTC_BINARY", SCTP_PRIVATE_NAMES[2])):
        if not isinstance(getattr(_sctp, name, None), int):
            missing.append(full)
    return missing


def guard_receive(transport: Any, on_failure: Callable[[Exception], None]) -> bool:
    """Wrap ``transport``'s receive path once; False (nothing changed) if aiortc lacks the seam."""
    if getattr(transport, _MARK, False):
        return True
    original: Callable[[int, int, bytes], Awaitable[None]] | None = getattr(transport, _RECEIVE, None)
    if original is None or missing_sctp_names():
        return False
    text_ppid: int = _sctp.WEBRTC_STRING
    binary_ppid: int = _sctp.WEBRTC_BINARY

    async def guarded(stream_id: int, pp_id: int, data: bytes) -> None:
        if pp_id == text_ppid:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                pp_id = binary_ppid  # hand it on as bytes: the link drops and counts it
        try:
            await original(stream_id, pp_id, data)
        except Exception as exc:  # a client's frame broke aiortc's handling: report, keep the association
            on_failure(exc)

    setattr(transport, _RECEIVE, guarded)
    setattr(transport, _MARK, True)
    return True
