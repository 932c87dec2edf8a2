"""Counted warnings: bad client input logged once per kind per session, the rest only counted.

A hostile or broken client can send thousands of bad messages a second; a warning per message
would drown the log (and cost more than the message). :class:`JunkCounter` logs the first
occurrence of each kind with its details, counts every occurrence, and logs one summary line
with all counts when its session ends. The counts are a plain dict, ready for metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any


class JunkKind(StrEnum):
    """What was wrong with one piece of client input (a closed set, usable as a metrics label)."""

    RATE_LIMITED = "rate_limited"
    """More messages than ``messages_per_sec`` / ``message_burst`` allow."""
    TOO_LARGE = "too_large"
    """A message longer than ``max_message_bytes``."""
    BINARY_NOT_UTF8 = "binary_not_utf8"
    """A frame (binary, or text with a broken encoding) whose bytes are not UTF-8."""
    TOO_MANY_CHANNELS = "too_many_channels"
    """A data channel opened beyond ``max_data_channels`` (closed at once)."""
    STALE_CHANNEL = "stale_channel"
    """A message on a data channel that a newer one replaced (the last opened wins)."""
    BAD_FRAME = "bad_frame"
    """A data-channel protocol frame aiortc failed on (e.g. a second channel open for one stream)."""
    NOT_JSON = "not_json"
    """Text that is neither a keepalive nor valid JSON."""
    TOO_DEEP = "too_deep"
    """JSON nested deeper than ``max_json_depth``."""
    UNEXPECTED_JSON = "unexpected_json"
    """Valid JSON that is not an object."""
    BAD_SIGNALLING = "bad_signalling"
    """A signalling envelope with an unknown type or wrongly typed fields."""
    BAD_RTVI = "bad_rtvi"
    """An RTVI envelope whose ``type`` or ``id`` has the wrong type or size."""
    UNSUPPORTED_RTVI_TYPE = "unsupported_rtvi_type"
    """An RTVI request type nobody handles (answered with ``error-response``)."""
    INBOX_FULL = "inbox_full"
    """An app message that found ``max_inbox_messages`` already waiting for the bot."""
    OUTGOING_QUEUE_FULL = "outgoing_queue_full"
    """A message to the client dropped because ``max_outgoing_queue`` were waiting for the channel."""
    DISPATCH_FAILED = "dispatch_failed"
    """Handling one message raised (a bug, logged at error level); the session goes on."""


class JunkCounter:
    """Per-session counts of bad input by kind; the first of each kind is logged, with details.

    ``logger`` returns the bound logger to use (so a ``pc_id`` that changes on restart is
    current); ``event`` names the first-occurrence log line and ``summary_event`` the one
    written by :meth:`log_summary`.
    """

    def __init__(
        self,
        logger: Callable[[], Any],
        *,
        event: str = "client_junk",
        summary_event: str = "client_junk_summary",
    ) -> None:
        self._log = logger
        self._event = event
        self._summary_event = summary_event
        self._counts: dict[str, int] = {}
        self._summarised = False

    def record(self, kind: str, *, level: str = "warning", **details: Any) -> int:
        """Count one occurrence of ``kind``; log it (at ``level``) if it is the first. Returns the count."""
        count = self._counts.get(kind, 0) + 1
        self._counts[kind] = count
        if count == 1:
            getattr(self._log(), level)(self._event, kind=str(kind), **details)
        return count

    @property
    def counts(self) -> dict[str, int]:
        """Occurrences so far by kind (a copy)."""
        return dict(self._counts)

    @property
    def total(self) -> int:
        """Occurrences so far, all kinds together."""
        return sum(self._counts.values())

    def log_summary(self) -> None:
        """Log one line with every count (at most once, and only if something was counted)."""
        if self._summarised or not self._counts:
            return
        self._summarised = True
        self._log().info(self._summary_event, counts=dict(self._counts), total=self.total)


__all__ = ["JunkCounter", "JunkKind"]
