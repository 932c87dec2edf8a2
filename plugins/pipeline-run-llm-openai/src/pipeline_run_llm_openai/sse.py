"""Server-sent events and the chat-completions stream on top of them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any


class ChatStreamError(RuntimeError):
    """The server reported an error inside the stream, or sent something unreadable."""


async def sse_events(lines: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event read from ``lines``."""
    data: list[str] = []
    async for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


async def chat_deltas(lines: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """The content pieces of a streamed chat completion, until ``[DONE]``."""
    async for data in sse_events(lines):
        if data.strip() == "[DONE]":
            return
        try:
            event: Any = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ChatStreamError(f"unreadable stream event: {data[:80]!r}") from exc
        if not isinstance(event, dict):
            continue
        if event.get("error"):
            error = event["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ChatStreamError(f"server error: {message}")
        for choice in event.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                yield content


__all__ = ["ChatStreamError", "chat_deltas", "sse_events"]
