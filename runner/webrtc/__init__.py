"""WebRTC: ``SmallWebRTCConnection`` (signalling, data channel, RTVI) and the transport.

Names are imported on first use, so ``runner.webrtc.ice`` (shared with the client) stays
light: the client must not load the pipeline machinery behind the transport.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.webrtc.connection import CONNECTION_EVENTS, SignalingError, SmallWebRTCConnection
    from runner.webrtc.errors import CandidateLimitError, OfferRejected
    from runner.webrtc.ice import IceServer, InvalidCandidateError
    from runner.webrtc.transport import SmallWebRTCTransport

_EXPORTS = {
    "CONNECTION_EVENTS": "runner.webrtc.connection",
    "SignalingError": "runner.webrtc.connection",
    "OfferRejected": "runner.webrtc.errors",
    "CandidateLimitError": "runner.webrtc.errors",
    "SmallWebRTCConnection": "runner.webrtc.connection",
    "IceServer": "runner.webrtc.ice",
    "InvalidCandidateError": "runner.webrtc.ice",
    "SmallWebRTCTransport": "runner.webrtc.transport",
}

__all__ = [
    "CONNECTION_EVENTS",
    "CandidateLimitError",
    "IceServer",
    "InvalidCandidateError",
    "OfferRejected",
    "SignalingError",
    "SmallWebRTCConnection",
    "SmallWebRTCTransport",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runner.webrtc' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
