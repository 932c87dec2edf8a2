"""Errors the WebRTC layer raises for client input it refuses (no web framework involved).

    ValueError
    ├── SignalingError          an offer, renegotiation or candidate batch the connection refuses
    │   ├── OfferRejected       refused before any peer-connection work (not SDP, bad shape, a limit)
    │   └── CandidateLimitError more remote ICE candidates than ``Limits`` allow
    └── InvalidCandidateError   (runner.webrtc.ice) one trickled candidate that cannot be parsed

The HTTP server maps each class to a status in one place (``runner.server.errors``).
"""

from __future__ import annotations

from typing import Any


class SignalingError(ValueError):
    """An offer or renegotiation the connection cannot accept (bad SDP, wrong type, ...)."""


class OfferRejected(SignalingError):
    """An offer refused before any peer connection was touched; the message names what is wrong."""


class CandidateLimitError(SignalingError):
    """Remote ICE candidates beyond ``max_candidates_per_patch`` or ``max_candidates_per_pc``."""


def clip(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters, for error messages quoting client input."""
    return text if len(text) <= limit else text[:limit] + "..."


def clip_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (escapes control and surrogate characters)."""
    return clip(repr(value), limit)


__all__ = ["CandidateLimitError", "OfferRejected", "SignalingError", "clip", "clip_repr"]
