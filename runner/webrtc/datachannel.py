"""The client-created data channel: keepalives, signalling envelopes, JSON app messages, send queue.

Inbound dispatch follows the reference: a text starting with ``ping`` is a keepalive; else JSON;
``{"type": "signalling", "message": {...}}`` is signalling; any other JSON object is an app message.
Anything unparseable is logged (with the connection's ``pc_id``) and dropped, never raised.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from aiortc import RTCDataChannel

#: Most outgoing messages kept while the channel is not open yet.
MAX_QUEUED_MESSAGES = 50

SIGNALLING_RENEGOTIATE: dict[str, Any] = {"type": "signalling", "message": {"type": "renegotiate"}}
SIGNALLING_PEER_LEFT: dict[str, Any] = {"type": "signalling", "message": {"type": "peerLeft"}}


class DataChannelLink:
    """Adopts the peer's data channel, classifies what arrives and queues what we send."""

    def __init__(
        self,
        *,
        on_ping: Callable[[], None],
        on_track_status: Callable[[int, bool], None],
        on_message: Callable[[Any], None],
        logger: Callable[[], Any],
    ) -> None:
        self._on_ping = on_ping
        self._on_track_status = on_track_status
        self._on_message = on_message
        self._log = logger
        self._channel: RTCDataChannel | None = None
        self._queue: deque[str] = deque()
        self._dropped = 0

    @property
    def channel(self) -> RTCDataChannel | None:
        """The adopted channel, if any."""
        return self._channel

    def is_open(self) -> bool:
        """True when messages go out immediately."""
        return self._channel is not None and self._channel.readyState == "open"

    def adopt(self, channel: RTCDataChannel) -> None:
        """Use ``channel`` from now on (the last one opened wins, whatever its label)."""
        self._channel = channel
        self._log().debug("data_channel_adopted", label=channel.label, state=channel.readyState)

        @channel.on("message")
        def _on_message(data: str | bytes) -> None:
            if channel is self._channel:
                self.handle_text(data)

        @channel.on("open")
        def _on_open() -> None:
            if channel is self._channel:
                self.flush()

        if channel.readyState == "open":
            self.flush()

    def detach(self) -> None:
        """Forget the current channel (its peer connection is going away)."""
        self._channel = None

    def clear(self) -> None:
        """Drop the current channel and every queued message."""
        self._channel = None
        self._queue.clear()

    def send_json(self, obj: Any) -> bool:
        """Send ``obj`` as JSON now, or queue it; False if it could not be encoded or was dropped."""
        try:
            text = json.dumps(obj)
        except (TypeError, ValueError) as exc:
            self._log().warning("app_message_not_json", error=str(exc))
            return False
        return self.send_text(text)

    def send_text(self, text: str) -> bool:
        """Send ``text`` now if the channel is open, else queue it (bounded)."""
        if self.is_open():
            assert self._channel is not None
            try:
                self._channel.send(text)
                return True
            except Exception as exc:  # aiortc raises InvalidStateError when closing
                self._log().warning("data_channel_send_failed", error=f"{type(exc).__name__}: {exc}")
                return False
        if len(self._queue) >= MAX_QUEUED_MESSAGES:
            self._dropped += 1
            self._log().warning("data_channel_queue_full", dropped=self._dropped, limit=MAX_QUEUED_MESSAGES)
            return False
        self._queue.append(text)
        return True

    def flush(self) -> None:
        """Send everything queued while the channel was not open."""
        while self._queue and self.is_open():
            assert self._channel is not None
            self._channel.send(self._queue.popleft())

    def handle_text(self, data: str | bytes) -> None:
        """Classify one inbound frame and hand it to the right callback."""
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                self._log().warning("data_channel_binary_ignored", size=len(data))
                return
        if data.startswith("ping"):
            self._on_ping()
            return
        try:
            message = json.loads(data)
        except ValueError:
            self._log().warning("data_channel_not_json", text=data[:200])
            return
        if isinstance(message, dict) and message.get("type") == "signalling" and message.get("message"):
            self._handle_signalling(message["message"])
            return
        if not isinstance(message, dict):
            self._log().warning("data_channel_unexpected_json", text=data[:200])
            return
        self._on_message(message)

    def _handle_signalling(self, payload: Any) -> None:
        if isinstance(payload, dict) and payload.get("type") == "trackStatus":
            index = payload.get("receiver_index")
            enabled = payload.get("enabled")
            if isinstance(index, int) and not isinstance(index, bool) and index >= 0 and isinstance(enabled, bool):
                self._on_track_status(index, enabled)
                return
        self._log().warning("signalling_message_ignored", message=str(payload)[:200])
