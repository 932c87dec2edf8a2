"""WebRTC: ``SmallWebRTCConnection`` (signalling, data channel, RTVI) and the transport."""

from runner.webrtc.connection import CONNECTION_EVENTS, SignalingError, SmallWebRTCConnection
from runner.webrtc.ice import IceServer, InvalidCandidateError
from runner.webrtc.transport import SmallWebRTCTransport

__all__ = [
    "CONNECTION_EVENTS",
    "IceServer",
    "InvalidCandidateError",
    "SignalingError",
    "SmallWebRTCConnection",
    "SmallWebRTCTransport",
]
