"""The RTVI handshake and requests the connection answers itself (protocol 2.2.0, label ``rtvi-ai``).

* ``client-ready`` -> ``bot-ready`` (same id) once the pipeline has called ``connect()``.
* ``client-message`` -> the ``client-message`` event; the app answers with
  :meth:`RtviSession.send_server_response`. A request nobody answered gets an ``error-response``
  right away, so the JS client's ``sendClientRequest`` fails fast instead of timing out.
* ``disconnect-bot`` -> the ``disconnect-bot`` event (the transport ends gracefully).
* A pipeline ``ErrorFrame`` -> ``error`` ``{error, fatal}`` (no id); the JS client disconnects on a fatal one.
* Other pipecat client types (``send-text``, ``dtmf``, ...) only reach the app as app messages;
  anything else gets ``error-response`` ``"Unsupported type <t>"``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

RTVI_LABEL = "rtvi-ai"
RTVI_VERSION = "2.2.0"
LIBRARY = "pipeline-run"
#: Longest error text sent to the client (a processor's message can quote anything).
MAX_ERROR_CHARS = 500

#: Client types the app may handle through app messages; no automatic error for these.
PASSIVE_TYPES = frozenset(
    {
        "send-text",
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


def is_rtvi(message: Any) -> bool:
    """True for an RTVI envelope."""
    return isinstance(message, dict) and message.get("label") == RTVI_LABEL and isinstance(message.get("type"), str)


def rtvi_message(msg_type: str, data: Any, msg_id: str | None = None) -> dict[str, Any]:
    """A server->client RTVI envelope (``id`` left out when None)."""
    out: dict[str, Any] = {"label": RTVI_LABEL, "type": msg_type}
    if msg_id is not None:
        out["id"] = msg_id
    out["data"] = data
    return out


class RtviSession:
    """Per-connection RTVI state; ``send`` queues a JSON object on the data channel."""

    def __init__(
        self,
        send: Callable[[Any], bool],
        fire: Callable[..., Awaitable[None]],
        has_handlers: Callable[[str], bool],
        logger: Callable[[], Any],
    ) -> None:
        self._send = send
        self._fire = fire
        self._has_handlers = has_handlers
        self._log = logger
        self.capabilities: dict[str, bool] = dict(DEFAULT_CAPABILITIES)
        self.client_ready = False
        self._answered: set[str] = set()

    def bot_ready(self, request_id: str | None) -> dict[str, Any]:
        """The ``bot-ready`` message for a ``client-ready`` with ``request_id``."""
        about = {"library": LIBRARY, "library_version": library_version()}
        data = {"version": RTVI_VERSION, "about": about, "capabilities": dict(self.capabilities)}
        return rtvi_message("bot-ready", data, request_id)

    def send_server_response(self, request_id: str, msg_type: str, data: Any) -> bool:
        """Answer a ``client-message`` request with ``server-response`` ``{t, d}``."""
        self._answered.add(request_id)
        return self._send(rtvi_message("server-response", {"t": msg_type, "d": data}, request_id))

    def send_error_response(self, request_id: str | None, error: str) -> bool:
        """Answer a request with ``error-response``."""
        if request_id is not None:
            self._answered.add(request_id)
        return self._send(rtvi_message("error-response", {"error": error}, request_id))

    def send_server_message(self, data: Any) -> bool:
        """Push arbitrary ``data`` to the client as ``server-message``."""
        return self._send(rtvi_message("server-message", data))

    def send_error(self, error: str, fatal: bool) -> bool:
        """Tell the client the bot hit an error (``error`` ``{error, fatal}``, no id); fatal ends the session."""
        if len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 3] + "..."
        return self._send(rtvi_message("error", {"error": error, "fatal": fatal}))

    async def handle(self, message: dict[str, Any]) -> None:
        """React to one inbound RTVI message (the pipeline is already connected)."""
        msg_type: str = message["type"]
        raw_id = message.get("id")
        request_id = raw_id if isinstance(raw_id, str) else (str(raw_id) if raw_id is not None else None)
        data = message.get("data")
        if msg_type == "client-ready":
            self._check_version(data)
            self.client_ready = True
            self._send(self.bot_ready(request_id))
            await self._fire("client-ready")
        elif msg_type == "client-message":
            await self._client_message(request_id, data)
        elif msg_type == "disconnect-bot":
            await self._fire("disconnect-bot")
        elif msg_type not in PASSIVE_TYPES:
            self._log().warning("rtvi_unsupported_type", rtvi_type=msg_type)
            self.send_error_response(request_id, f"Unsupported type {msg_type}")

    async def _client_message(self, request_id: str | None, data: Any) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("t"), str):
            self.send_error_response(request_id, "client-message needs data {t: string, d: any}")
            return
        msg_type, payload = data["t"], data.get("d")
        handled = self._has_handlers("client-message")
        await self._fire("client-message", msg_type, payload, request_id)
        if request_id is None or request_id in self._answered:
            return
        reason = "was not answered by the bot" if handled else "has no handler in the bot"
        self.send_error_response(request_id, f"client-message {msg_type!r} {reason}")

    def _check_version(self, data: Any) -> None:
        version = data.get("version") if isinstance(data, dict) else None
        major = str(version).split(".", 1)[0] if version is not None else ""
        if major != RTVI_VERSION.split(".", 1)[0]:
            self._log().warning("rtvi_client_version_mismatch", client_version=version, server_version=RTVI_VERSION)
