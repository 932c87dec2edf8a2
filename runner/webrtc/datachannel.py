"""The client-created data channel: keepalives, signalling envelopes, JSON app messages, send queue.

Inbound dispatch follows the reference: a text starting with ``ping`` is a keepalive; else JSON;
``{"type": "signalling", "message": {...}}`` is signalling; any other JSON object is an app message.
Everything a client sends is hostile until proven otherwise: each frame first takes a token from
the client's rate bucket (``messages_per_sec`` / ``message_burst``), then is checked against
``max_message_bytes`` and parsed with a bounded JSON depth. Whatever fails is dropped and counted
by kind (one warning per kind per session, see :mod:`runner.webrtc.junk`), and nothing raised
while handling a frame ever reaches aiortc's event loops, so one bad message never ends a session.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from importlib import metadata
from typing import Any, Final

from aiortc import RTCDataChannel

from runner.limits import DEFAULT_LIMITS, JsonLimitError, Limits, loads_bounded
from runner.ratelimit import TokenBucket
from runner.webrtc.aiortc_internals import guard_receive, missing_sctp_names
from runner.webrtc.junk import JunkCounter, JunkKind

SIGNALLING_RENEGOTIATE: dict[str, Any] = {"type": "signalling", "message": {"type": "renegotiate"}}
SIGNALLING_PEER_LEFT: dict[str, Any] = {"type": "signalling", "message": {"type": "peerLeft"}}

#: What :meth:`DataChannelLink.handle_text` returns for accepted frames (junk returns its JunkKind).
PING: Final = "ping"
TRACK_STATUS: Final = "track_status"
APP_MESSAGE: Final = "app_message"
ACCEPTED: Final = frozenset({PING, TRACK_STATUS, APP_MESSAGE})

#: Characters of a bad frame quoted in its (first) warning.
PREVIEW_CHARS = 120

_JSON_REASONS: dict[str, JunkKind] = {
    "not_utf8": JunkKind.BINARY_NOT_UTF8,
    "not_json": JunkKind.NOT_JSON,
    "too_deep": JunkKind.TOO_DEEP,
}


class DataChannelLink:
    """Adopts the peer's data channel, classifies what arrives and queues what we send."""

    def __init__(
        self,
        *,
        on_ping: Callable[[], None],
        on_track_status: Callable[[int, bool], None],
        on_message: Callable[[dict[str, Any]], None],
        logger: Callable[[], Any],
        limits: Limits = DEFAULT_LIMITS,
        junk: JunkCounter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_ping = on_ping
        self._on_track_status = on_track_status
        self._on_message = on_message
        self._log = logger
        self.limits = limits
        self.junk = junk if junk is not None else JunkCounter(logger)
        self._bucket = TokenBucket(limits.messages_per_sec, limits.message_burst, clock=clock)
        self._channel: RTCDataChannel | None = None
        self._opened = 0  # channels adopted on the current peer connection
        self._queue: deque[str] = deque()
        self._cleared = False
        self._progress = asyncio.Event()  # set on anything that may end a drain()

    @property
    def channel(self) -> RTCDataChannel | None:
        """The adopted channel, if any."""
        return self._channel

    def is_open(self) -> bool:
        """True when messages go out immediately."""
        return self._channel is not None and self._channel.readyState == "open"

    def adopt(self, channel: RTCDataChannel) -> None:
        """Use ``channel`` from now on (the last one opened wins, whatever its label).

        Beyond ``max_data_channels`` on one peer connection a new channel is closed instead.
        """
        if self._opened >= self.limits.max_data_channels:
            self.junk.record(JunkKind.TOO_MANY_CHANNELS, limit=self.limits.max_data_channels)
            channel.close()
            return
        self._opened += 1
        self._channel = channel
        self._log().debug("data_channel_adopted", label=channel.label, state=channel.readyState)
        if not guard_receive(channel.transport, self._on_frame_failure):
            self._log().warning("sctp_receive_unguarded", missing=missing_sctp_names(), aiortc=_aiortc_version())

        # These run inside aiortc's SCTP/DTLS tasks: an exception escaping them would end the
        # peer connection. handle_text and flush never raise.
        @channel.on("message")
        def _on_message(data: str | bytes) -> None:
            if channel is self._channel:
                self.handle_text(data)
            else:
                self.junk.record(JunkKind.STALE_CHANNEL, label=channel.label[:PREVIEW_CHARS])

        @channel.on("open")
        def _on_open() -> None:
            if channel is self._channel:
                self.flush()
            self._progress.set()

        @channel.on("bufferedamountlow")
        def _on_buffered_low() -> None:
            self._progress.set()

        @channel.on("close")
        def _on_close() -> None:
            self._progress.set()

        if channel.readyState == "open":
            self.flush()
        self._progress.set()

    def detach(self) -> None:
        """Forget the current channel (its peer connection is going away)."""
        self._channel = None
        self._opened = 0
        self._progress.set()

    def clear(self) -> None:
        """Drop the current channel and every queued message; a pending :meth:`drain` gives up."""
        self.detach()
        self._queue.clear()
        self._cleared = True

    # -- outbound -------------------------------------------------------------------------------

    def send_json(self, obj: Any) -> bool:
        """Send ``obj`` as JSON now, or queue it; False if it could not be encoded or was dropped."""
        try:
            text = json.dumps(obj)
        except (TypeError, ValueError, RecursionError) as exc:
            self._log().warning("app_message_not_json", error=f"{type(exc).__name__}: {exc}")
            return False
        return self.send_text(text)

    def send_text(self, text: str) -> bool:
        """Send ``text`` now if the channel is open, else queue it (at most ``max_outgoing_queue``)."""
        if self.is_open():
            return self._send_now(text)
        if len(self._queue) >= self.limits.max_outgoing_queue:
            self.junk.record(JunkKind.OUTGOING_QUEUE_FULL, limit=self.limits.max_outgoing_queue)
            return False
        self._queue.append(text)
        return True

    def flush(self) -> None:
        """Send everything queued while the channel was not open (stops at the first failure)."""
        while self._queue and self.is_open():
            if not self._send_now(self._queue.popleft()):
                return

    def _send_now(self, text: str) -> bool:
        assert self._channel is not None
        try:
            self._channel.send(text)
            return True
        except Exception as exc:  # InvalidStateError when closing, ValueError over the peer's size limit
            self._log().warning("data_channel_send_failed", error=f"{type(exc).__name__}: {exc}")
            return False

    async def drain(self, timeout: float, *, wait_for_open: bool = False) -> bool:  # noqa: ASYNC109 - a bound
        """Wait (at most ``timeout`` s) until everything we sent or queued is handed to SCTP.

        Uses the channel's public ``bufferedAmount`` and its ``bufferedamountlow`` event (fired
        when the amount falls to ``bufferedAmountLowThreshold``, 0 by default). With
        ``wait_for_open`` a channel that is not there or not open yet is waited for, so the
        queued messages go out first. False when that is not possible (no channel, it closed,
        the link was cleared) or the time ran out.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    channel = self._channel
                    if channel is not None and channel.readyState == "open":
                        if not self._queue and channel.bufferedAmount <= channel.bufferedAmountLowThreshold:
                            return True
                    elif self._cleared or not wait_for_open or (channel is not None and channel.readyState == "closed"):
                        return False
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            buffered = self._channel.bufferedAmount if self._channel is not None else None
            queued = len(self._queue)
            self._log().info("data_channel_drain_timeout", buffered=buffered, queued=queued, timeout_secs=timeout)
            return False

    # -- inbound --------------------------------------------------------------------------------

    def handle_text(self, data: str | bytes) -> str:
        """Classify one inbound frame and hand it on; returns what it was (never raises).

        The result is one of :data:`ACCEPTED` or the :class:`JunkKind` it was counted as.
        """
        try:
            return self._classify(data)
        except Exception as exc:  # a bug in our own handling: logged, counted, session kept
            self.junk.record(JunkKind.DISPATCH_FAILED, level="error", error=f"{type(exc).__name__}: {exc}")
            return JunkKind.DISPATCH_FAILED

    def _classify(self, data: str | bytes) -> str:
        if not self._bucket.try_take():
            return self._junk(JunkKind.RATE_LIMITED, rate=self.limits.messages_per_sec, burst=self.limits.message_burst)
        if not isinstance(data, str | bytes):
            return self._junk(JunkKind.NOT_JSON, frame_type=type(data).__name__)
        size = _utf8_size(data, self.limits.max_message_bytes)
        if size > self.limits.max_message_bytes:
            return self._junk(JunkKind.TOO_LARGE, size=size, limit=self.limits.max_message_bytes)
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                return self._junk(JunkKind.BINARY_NOT_UTF8, size=len(data))
        if data.startswith("ping"):
            self._on_ping()
            return PING
        try:
            message = loads_bounded(data, self.limits.max_json_depth)
        except JsonLimitError as exc:
            kind = _JSON_REASONS.get(exc.reason, JunkKind.NOT_JSON)
            return self._junk(kind, error=str(exc)[:PREVIEW_CHARS], text=data[:PREVIEW_CHARS])
        if not isinstance(message, dict):
            return self._junk(JunkKind.UNEXPECTED_JSON, json_type=type(message).__name__, text=data[:PREVIEW_CHARS])
        if message.get("type") == "signalling" and message.get("message"):
            return self._handle_signalling(message["message"], data)
        self._on_message(message)
        return APP_MESSAGE

    def _handle_signalling(self, payload: Any, text: str) -> str:
        if isinstance(payload, dict) and payload.get("type") == "trackStatus":
            index = payload.get("receiver_index")
            enabled = payload.get("enabled")
            # receiver indexes follow the offer's media m-lines, so they are bounded by its limits
            receivers = self.limits.max_audio_sections + self.limits.max_video_sections
            if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < receivers:
                if isinstance(enabled, bool):
                    self._on_track_status(index, enabled)
                    return TRACK_STATUS
        return self._junk(JunkKind.BAD_SIGNALLING, text=text[:PREVIEW_CHARS])

    def _on_frame_failure(self, exc: Exception) -> None:
        self.junk.record(JunkKind.BAD_FRAME, error=f"{type(exc).__name__}: {str(exc)[:PREVIEW_CHARS]}")

    def _junk(self, kind: JunkKind, **details: Any) -> str:
        self.junk.record(kind, **details)
        return kind


def _aiortc_version() -> str:
    try:
        return metadata.version("aiortc")
    except metadata.PackageNotFoundError:
        return "unknown"


def _utf8_size(data: str | bytes, limit: int) -> int:
    """Size of ``data`` in UTF-8 bytes, exact where it matters for ``limit`` and cheap otherwise."""
    if isinstance(data, bytes):
        return len(data)
    if len(data) > limit or len(data) * 4 <= limit:  # a character is 1 to 4 UTF-8 bytes
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


__all__ = [
    "ACCEPTED",
    "APP_MESSAGE",
    "PING",
    "SIGNALLING_PEER_LEFT",
    "SIGNALLING_RENEGOTIATE",
    "TRACK_STATUS",
    "DataChannelLink",
]
