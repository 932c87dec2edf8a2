"""The RTVI ``send-text`` request (client-js ``sendText(content, options)``), checked.

Wire shape: ``{"label": "rtvi-ai", "type": "send-text", "id": ..., "data": {"content": str,
"options": {"run_immediately"?: bool, "audio_response"?: bool}}}``. The connection answers a
malformed one with ``error-response`` (:func:`parse_send_text` gives the reason); the
user-turn aggregator turns a good one into a user turn.

Options: ``run_immediately`` (default true) ends the turn with this text at once; false keeps
the text to join the user's next turn. ``audio_response`` is accepted and ignored: the bot
always answers the way its pipeline answers (out loud when it has a TTS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEND_TEXT = "send-text"


@dataclass(frozen=True, slots=True)
class SendText:
    """A well-formed ``send-text`` request."""

    content: str
    run_immediately: bool = True
    audio_response: bool = True


def parse_send_text(data: Any) -> SendText | str:
    """The request in ``data``, or why it is malformed (a sentence for the client)."""
    if not isinstance(data, dict):
        return "send-text needs data {content: string, options?: object}"
    content = data.get("content")
    if not isinstance(content, str):
        return f"send-text 'content' must be a string, not {_kind(content)}"
    options = data.get("options", {})
    if options is None:
        options = {}
    if not isinstance(options, dict):
        return f"send-text 'options' must be an object, not {_kind(options)}"
    flags: dict[str, bool] = {}
    for key in ("run_immediately", "audio_response"):
        value = options.get(key, True)
        if value is None:
            value = True
        if not isinstance(value, bool):
            return f"send-text option {key!r} must be true or false, not {_kind(value)}"
        flags[key] = value
    return SendText(content=content, **flags)


def send_text_in(message: Any) -> SendText | None:
    """The well-formed ``send-text`` request in an inbound app message, else None."""
    if not isinstance(message, dict) or message.get("label") != "rtvi-ai" or message.get("type") != SEND_TEXT:
        return None
    parsed = parse_send_text(message.get("data"))
    return parsed if isinstance(parsed, SendText) else None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


__all__ = ["SEND_TEXT", "SendText", "parse_send_text", "send_text_in"]
