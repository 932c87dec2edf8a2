"""RTVI envelopes on the data channel: the one place that builds and reads them.

An envelope is a JSON object ``{"label": "rtvi-ai", "type": ..., "id": ..., "data": ...}``;
``id`` is left out when there is none, ``data`` when the message carries none. The server,
the pipeline's RTVI events and the Python client all use this module; it depends on nothing
else of ours, so the client can import it without pulling in server code.
"""

from __future__ import annotations

from typing import Any, NamedTuple

RTVI_LABEL = "rtvi-ai"


class _Absent:
    """Marks a message without ``data`` (``None`` is a value: it is sent as ``null``)."""

    def __repr__(self) -> str:
        return "NO_DATA"


NO_DATA: Any = _Absent()


def rtvi_envelope(msg_type: str, data: Any = NO_DATA, msg_id: str | None = None) -> dict[str, Any]:
    """An RTVI message: ``label``, ``type``, then ``id`` (when given) and ``data`` (unless :data:`NO_DATA`)."""
    out: dict[str, Any] = {"label": RTVI_LABEL, "type": msg_type}
    if msg_id is not None:
        out["id"] = msg_id
    if data is not NO_DATA:
        out["data"] = data
    return out


def is_rtvi(message: Any) -> bool:
    """True for an RTVI envelope (``label`` is ``rtvi-ai``; its other fields may still be wrong)."""
    return isinstance(message, dict) and message.get("label") == RTVI_LABEL


class Envelope(NamedTuple):
    """The fields of a received envelope, as sent: each is client/server-controlled and unchecked."""

    type: Any
    id: Any
    data: Any


def parse_rtvi(message: Any) -> Envelope | None:
    """The fields of an RTVI envelope, or None when ``message`` is not one; absent fields are None."""
    if not is_rtvi(message):
        return None
    return Envelope(message.get("type"), message.get("id"), message.get("data"))
