"""Every bound on what a client controls, in one reviewable model, plus the bounded JSON parser.

A client (browser, script, attacker) decides the size and shape of request bodies, offers,
candidates and data-channel traffic. Each of those has a named limit here with a default that
no well-behaved client reaches; exceeding one is answered with a specific refusal (a 4xx with
a reason over HTTP, one counted warning per kind on the data channel), never with work done
first. The model is part of the spec (``server.limits``) and of :class:`ServerConfig`, and it
is picklable, so worker processes get the same values.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Limits(BaseModel):
    """Limits on client-controlled input; every field has a safe default."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    # -- HTTP ---------------------------------------------------------------------------------
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    """Largest HTTP request body (offer, PATCH, /start); larger ones get 413."""
    max_json_depth: int = Field(default=32, ge=2, le=512)
    """Deepest nesting of arrays/objects accepted in any JSON (HTTP bodies and data-channel messages)."""

    # -- offers -------------------------------------------------------------------------------
    max_audio_sections: int = Field(default=1, ge=0, le=16)
    """Audio m-lines an offer may carry (the protocol uses one: the microphone)."""
    max_video_sections: int = Field(default=2, ge=0, le=16)
    """Video m-lines an offer may carry (the protocol uses two: camera and screen)."""
    max_application_sections: int = Field(default=1, ge=0, le=4)
    """Data-channel (application) m-lines an offer may carry."""
    max_codecs_per_section: int = Field(default=64, ge=1, le=256)
    """Payload types one m-line may list (and ``a=rtpmap`` lines one m-section may carry)."""
    max_lines_per_section: int = Field(default=1000, ge=50, le=100_000)
    """Lines in one m-section, or before the first one (a browser's video section has about 200)."""

    # -- ICE ----------------------------------------------------------------------------------
    max_candidates_per_pc: int = Field(default=100, ge=1, le=10_000)
    """Remote ICE candidates (inline in offers plus trickled) one peer connection accepts."""
    max_candidates_per_patch: int = Field(default=50, ge=1, le=10_000)
    """Candidates one PATCH may carry."""

    # -- request rates, per session -----------------------------------------------------------
    patch_rate_per_sec: float = Field(default=10.0, gt=0)
    """Sustained PATCH requests per second per session (the JS client sends at most 5)."""
    patch_burst: int = Field(default=40, ge=1)
    """PATCH requests a session may send back to back before the rate applies."""
    renegotiations_per_min: float = Field(default=20.0, gt=0)
    """Sustained renegotiations (offers with a known pc_id) per minute per session."""
    renegotiation_burst: int = Field(default=6, ge=1)
    """Renegotiations a session may send back to back before the rate applies."""

    # -- data channel -------------------------------------------------------------------------
    max_message_bytes: int = Field(default=64 * 1024, ge=256, le=256 * 1024)
    """Largest data-channel message accepted from a client; larger ones are dropped and counted."""
    messages_per_sec: float = Field(default=50.0, gt=0)
    """Sustained data-channel messages per second per client (pings included; the JS client sends ~1)."""
    message_burst: int = Field(default=200, ge=1)
    """Data-channel messages a client may send back to back before the rate applies."""
    max_inbox_messages: int = Field(default=100, ge=1, le=100_000)
    """App messages waiting for the bot (before and after connect); further ones are dropped and counted."""
    max_outgoing_queue: int = Field(default=50, ge=1, le=100_000)
    """Messages to the client kept while its data channel is not open yet."""
    answered_ids_memory: int = Field(default=1024, ge=16, le=1_000_000)
    """RTVI request ids remembered as answered (oldest forgotten first)."""
    max_request_id_chars: int = Field(default=128, ge=8, le=4096)
    """Longest RTVI request id accepted (client-js sends 8 characters); longer ones are junk."""
    max_data_channels: int = Field(default=4, ge=1, le=1024)
    """Data channels a client may open on one peer connection (the JS client opens one); more are closed."""


DEFAULT_LIMITS = Limits()


class JsonLimitError(ValueError):
    """A JSON text that is not valid or nests deeper than allowed; the message says which.

    ``reason`` is ``"not_utf8"``, ``"not_json"`` or ``"too_deep"`` for callers that count kinds.
    """

    def __init__(self, message: str, *, reason: str = "not_json") -> None:
        super().__init__(message)
        self.reason = reason


def loads_bounded(text: str | bytes, max_depth: int) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` with :class:`JsonLimitError`.

    The C parser recurses once per level, so a hostile ``[[[[...`` would raise
    ``RecursionError`` (or worse, exhaust the stack of whoever catches it late). The cheap
    bracket count lets almost every real message skip the depth walk entirely.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonLimitError(f"not UTF-8: {exc}", reason="not_utf8") from exc
    openers = text.count("[") + text.count("{")
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise JsonLimitError(f"nested deeper than {max_depth} levels", reason="too_deep") from exc
    except ValueError as exc:
        raise JsonLimitError(f"not valid JSON: {exc}") from exc
    if openers > max_depth and json_depth(value) > max_depth:
        raise JsonLimitError(f"nested deeper than {max_depth} levels", reason="too_deep")
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


__all__ = ["DEFAULT_LIMITS", "JsonLimitError", "Limits", "json_depth", "loads_bounded"]
