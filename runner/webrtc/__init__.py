"""WebRTC: ``SmallWebRTCConnection`` (signalling, data channel, RTVI) and, when present, the transport."""

from runner.webrtc.connection import CONNECTION_EVENTS, SignalingError, SmallWebRTCConnection
from runner.webrtc.ice import IceServer, InvalidCandidateError

__all__ = [
    "CONNECTION_EVENTS",
    "IceServer",
    "InvalidCandidateError",
    "SignalingError",
    "SmallWebRTCConnection",
]

try:  # the transport is written separately; the connection API works without it
    from runner.webrtc.transport import SmallWebRTCTransport  # noqa: F401

    __all__.append("SmallWebRTCTransport")
except ModuleNotFoundError as exc:  # pragma: no cover - transport not there yet
    if exc.name != "runner.webrtc.transport":
        raise
