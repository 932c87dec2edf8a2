"""The RTVI handshake and requests the connection answers itself (protocol 2.2.0, label ``rtvi-ai``).

* ``client-ready`` -> ``bot-ready`` (same id) once the pipeline has called ``connect()``.
* ``client-message`` -> the ``client-message`` event; the app answers with
  :meth:`RtviSession.send_server_response`. A request nobody answered gets an ``error-response``
  right away, so the JS client's ``sendClientRequest`` fails fast instead of timing out.
* ``disconnect-bot`` -> the ``disconnect-bot`` event (the transport ends gracefully).
* A pipeline ``ErrorFrame`` -> ``error`` ``{error, fatal}`` (no id); the JS client disconnects on a fatal one.
* ``send-text`` is checked here (a malformed one gets ``error-response``); like every app
  message it also reaches the pipeline, where ``conversation.user_turn`` makes it a user turn
  (see :mod:`runner.processors.rtvi.send_text`).
* Other pipecat client types (``dtmf``, ...) only reach the app as app messages;
  anything else gets ``error-response`` ``"Unsupported type <t>"``.

Every field is client-controlled and checked: ``type`` must be a string and ``id`` a string of
at most ``max_request_id_chars`` (or absent); a bad envelope is counted as junk and, when its id
is usable, answered with ``error-response``. ``data`` may be anything. Answered ids are
remembered up to ``answered_ids_memory`` (oldest forgotten first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

from runner.limits import DEFAULT_LIMITS, Limits
from runner.processors.rtvi.send_text import SEND_TEXT, parse_send_text
from runner.rtvi_protocol import parse_rtvi
from runner.rtvi_protocol import rtvi_envelope as rtvi_message
from runner.webrtc.junk import JunkCounter, JunkKind

RTVI_VERSION = "2.2.0"
LIBRARY = "pipeline-run"
#: Longest error text sent to the client (a processor's message can quote anything).
MAX_ERROR_CHARS = 500

#: Client types the app may handle through app messages; no automatic error for these.
PASSIVE_TYPES = frozenset(
    {
        "send-file",
        "llm-function-call-result",
        "raw-audio",
        "raw-audio-batch",
        "dtmf",
        "ui-event",
        "ui-snapshot",
        "ui-cancel-job-group",
    }
)

DEFAULT_CAPABILITIES: dict[str, bool] = {
    "audio_in": False,
    "audio_out": False,
    "video_in": False,
    "screen_in": False,
    "video_out": False,
    "metrics": False,
}


def library_version() -> str:
    """Our distribution version, as reported in ``bot-ready.about``."""
    try:
        return metadata.version(LIBRARY)
    except metadata.PackageNotFoundError:
        return "0.0.0"


class RtviSession:
    """Per-connection RTVI state; ``send`` queues a JSON object on the data channel."""

    def __init__(
        self,
        send: Callable[[Any], bool],
        fire: Callable[..., Awaitable[None]],
        has_handlers: Callable[[str], bool],
        logger: Callable[[], Any],
        *,
        limits: Limits = DEFAULT_LIMITS,
        junk: JunkCounter | None = None,
    ) -> None:
        self._send = send
        self._fire = fire
        self._has_handlers = has_handlers
        self._log = logger
        self.limits = limits
        self.junk = junk if junk is not None else JunkCounter(logger)
        self.capabilities: dict[str, bool] = dict(DEFAULT_CAPABILITIES)
        self.client_ready = False
        self._version_warned = False
        self._answered: OrderedDict[str, None] = OrderedDict()

    def answered(self, request_id: str) -> bool:
        """True if ``request_id`` was answered (and is still remembered)."""
        return request_id in self._answered

    @property
    def answered_count(self) -> int:
        """How many answered ids are remembered (at most ``answered_ids_memory``)."""
        return len(self._answered)

    def _remember(self, request_id: str) -> None:
        self._answered[request_id] = None
        self._answered.move_to_end(request_id)
        while len(self._answered) > self.limits.answered_ids_memory:
            self._answered.popitem(last=False)

    def bot_ready(self, request_id: str | None) -> dict[str, Any]:
        """The ``bot-ready`` message for a ``client-ready`` with ``request_id``."""
        about = {"library": LIBRARY, "library_version": library_version()}
        data = {"version": RTVI_VERSION, "about": about, "capabilities": dict(self.capabilities)}
        return rtvi_message("bot-ready", data, request_id)

    def send_server_response(self, request_id: str, msg_type: str, data: Any) -> bool:
        """Answer a ``client-message`` request with ``server-response`` ``{t, d}``."""
        self._remember(request_id)
        return self._send(rtvi_message("server-response", {"t": msg_type, "d": data}, request_id))

    def send_error_response(self, request_id: str | None, error: str) -> bool:
        """Answer a request with ``error-response``."""
        if request_id is not None:
            self._remember(request_id)
        return self._send(rtvi_message("error-response", {"error": error}, request_id))

    def send_server_message(self, data: Any) -> bool:
        """Push arbitrary ``data`` to the client as ``server-message``."""
        return self._send(rtvi_message("server-message", data))

    def send_error(self, error: str, fatal: bool) -> bool:
        """Tell the client the bot hit an error (``error`` ``{error, fatal}``, no id); fatal ends the session."""
        if len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 3] + "..."
        return self._send(rtvi_message("error", {"error": error, "fatal": fatal}))

    def _request_id(self, raw_id: Any) -> tuple[str | None, bool]:
        """``(id, usable)``: a missing/null id is fine (None, True); a wrong one is (None, False)."""
        if raw_id is None:
            return None, True
        if isinstance(raw_id, str) and len(raw_id) <= self.limits.max_request_id_chars:
            return raw_id, True
        return None, False

    async def handle(self, message: dict[str, Any]) -> None:
        """React to one inbound RTVI message (the pipeline is already connected)."""
        envelope = parse_rtvi(message)
        assert envelope is not None, "the connection only hands RTVI envelopes here"
        request_id, id_ok = self._request_id(envelope.id)
        msg_type = envelope.type
        if not id_ok:
            raw = envelope.id
            self.junk.record(JunkKind.BAD_RTVI, field="id", id_type=type(raw).__name__)
            return  # nothing to address an answer to
        if not isinstance(msg_type, str):
            self.junk.record(JunkKind.BAD_RTVI, field="type", type_type=type(msg_type).__name__)
            if request_id is not None:
                self.send_error_response(request_id, "RTVI message needs a string 'type'")
            return
        data = envelope.data
        if msg_type == "client-ready":
            self._check_version(data)
            self.client_ready = True
            self._send(self.bot_ready(request_id))
            await self._fire("client-ready")
        elif msg_type == "client-message":
            await self._client_message(request_id, data)
        elif msg_type == "disconnect-bot":
            await self._fire("disconnect-bot")
        elif msg_type == SEND_TEXT:
            parsed = parse_send_text(data)
            if isinstance(parsed, str):
                self.junk.record(JunkKind.BAD_RTVI, field="send-text")
                self.send_error_response(request_id, parsed)
        elif msg_type not in PASSIVE_TYPES:
            self.junk.record(JunkKind.UNSUPPORTED_RTVI_TYPE, rtvi_type=msg_type[:64])
            self.send_error_response(request_id, f"Unsupported type {msg_type[:64]}")

    async def _client_message(self, request_id: str | None, data: Any) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("t"), str):
            self.send_error_response(request_id, "client-message needs data {t: string, d: any}")
            return
        msg_type, payload = data["t"], data.get("d")
        handled = self._has_handlers("client-message")
        await self._fire("client-message", msg_type, payload, request_id)
        if request_id is None or self.answered(request_id):
            return
        reason = "was not answered by the bot" if handled else "has no handler in the bot"
        self.send_error_response(request_id, f"client-message {msg_type!r} {reason}")

    def _check_version(self, data: Any) -> None:
        version = data.get("version") if isinstance(data, dict) else None
        shown = version[:32] if isinstance(version, str) else type(version).__name__
        major = version.split(".", 1)[0] if isinstance(version, str) else ""
        if major != RTVI_VERSION.split(".", 1)[0] and not self._version_warned:
            self._version_warned = True  # a client repeating client-ready gets one warning, not a flood
            self._log().warning("rtvi_client_version_mismatch", client_version=shown, server_version=RTVI_VERSION)
