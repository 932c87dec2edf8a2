"""``SmallWebRTCTransport``: a :class:`SmallWebRTCConnection` as pipeline input and output.

::

    transport = SmallWebRTCTransport(webrtc_connection=conn, params=TransportParams(...))
    Pipeline([transport.input(), ..., transport.output()])

The first of the two processors to see the ``StartFrame`` (after it has travelled the whole
pipeline) calls ``connection.connect()`` once. When the connection reports ``connected``
the output tracks are attached and the readers start, then ``on_client_connected`` fires
(once per session: a ``restart_pc`` re-attaches media silently). ``EndFrame``,
``CancelFrame`` or cleanup disconnect the client once (``peerLeft`` + close).

Events (handlers get the transport first): ``on_app_message`` (message, sender_pc_id),
``on_client_connected`` / ``on_client_disconnected`` / ``on_client_closed`` / ``on_client_ready``
(connection), ``on_client_message`` (msg_type, data, request_id; answer it with
``connection.send_server_response``), ``on_client_suspended`` (connection, reason) when the client
vanished but may come back, ``on_client_resumed`` (connection, how) when it did (``how``:
``"pings_returned"`` or ``"restart"``). While suspended the output is quiet: queued bot audio is
dropped and later writes return at once (counted in ``audio_dropped_frames``), so neither the track
buffer nor a TTS waiting on backpressure piles up; the pipeline and its state stay as they are.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiortc import MediaStreamTrack

from runner.events import EventEmitter
from runner.frames import OutputAudioRawFrame, OutputImageRawFrame, StartFrame
from runner.params import TRANSPORT_EVENTS, TransportParams
from runner.webrtc.connection import SmallWebRTCConnection
from runner.webrtc.input import SmallWebRTCInputTransport
from runner.webrtc.output import SmallWebRTCOutputTransport

log = structlog.get_logger("runner.webrtc.transport")


class SmallWebRTCTransport(EventEmitter):
    """Input and output processors sharing one client connection."""

    def __init__(
        self,
        webrtc_connection: SmallWebRTCConnection,
        params: TransportParams,
        input_name: str | None = None,
        output_name: str | None = None,
    ) -> None:
        super().__init__()
        for name in TRANSPORT_EVENTS:
            self._register_event_handler(name)
        self._connection = webrtc_connection
        self._params = params
        self._start_frame: StartFrame | None = None
        self._connect_called = False
        self._disconnect_called = False
        self._client_connected = False
        self._input = SmallWebRTCInputTransport(self, params, name=input_name)
        self._output = SmallWebRTCOutputTransport(self, params, name=output_name)
        self._report_capabilities()
        conn = webrtc_connection
        conn.add_event_handler("connected", self._on_connected)
        conn.add_event_handler("disconnected", self._on_disconnected)
        conn.add_event_handler("suspended", self._on_suspended)
        conn.add_event_handler("resumed", self._on_resumed)
        conn.add_event_handler("closed", self._on_closed)
        conn.add_event_handler("app-message", self._on_app_message)
        conn.add_event_handler("client-ready", self._on_client_ready)
        conn.add_event_handler("client-message", self._on_client_message)
        conn.add_event_handler("disconnect-bot", self._on_disconnect_bot)
        conn.add_event_handler("track-started", self._on_tracks_changed)
        conn.add_event_handler("pc-replaced", self._on_tracks_changed)

    # ------------------------------------------------------------ public API

    def input(self) -> SmallWebRTCInputTransport:
        """The input processor (always the same instance)."""
        return self._input

    def output(self) -> SmallWebRTCOutputTransport:
        """The output processor (always the same instance)."""
        return self._output

    @property
    def connection(self) -> SmallWebRTCConnection:
        return self._connection

    @property
    def params(self) -> TransportParams:
        return self._params

    @property
    def start_frame(self) -> StartFrame:
        """The pipeline's ``StartFrame`` (defaults before the pipeline started)."""
        return self._start_frame if self._start_frame is not None else StartFrame()

    async def send_image(self, frame: OutputImageRawFrame) -> None:
        """Queue an image for the bot's video track."""
        await self._output.queue_frame(frame)

    async def send_audio(self, frame: OutputAudioRawFrame) -> None:
        """Queue bot audio (waits while the output track is full)."""
        await self._output.queue_frame(frame)

    # ------------------------------------------------------------ used by input/output

    def set_start_frame(self, frame: StartFrame) -> None:
        if self._start_frame is None:
            self._start_frame = frame

    async def connect_client(self) -> None:
        """Tell the connection the pipeline is ready (once)."""
        if self._connect_called or self._disconnect_called:
            return
        self._connect_called = True
        await self._connection.connect()

    async def disconnect_client(self) -> None:
        """Send ``peerLeft`` and close the connection (once)."""
        if self._disconnect_called:
            return
        self._disconnect_called = True
        await self._input.stop_readers()
        self._output.detach_tracks()
        if not self._connection.closed:
            await self._connection.disconnect()

    # ------------------------------------------------------------ connection events

    def _report_capabilities(self) -> None:
        p = self._params
        setter = getattr(self._connection, "set_bot_capabilities", None)
        if setter is not None:
            setter(
                {
                    "audio_in": p.audio_in_enabled,
                    "audio_out": p.audio_out_enabled,
                    "video_in": p.video_in_enabled,
                    "screen_in": p.video_in_enabled,
                    "video_out": p.video_out_enabled,
                }
            )

    async def _on_connected(self, conn: SmallWebRTCConnection) -> None:
        if self._disconnect_called:
            return
        self._output.attach_tracks()
        self._input.start_readers()
        if not self._client_connected:
            self._client_connected = True
            log.info("client_connected", pc_id=conn.pc_id)
            await self._call_event_handler("on_client_connected", conn)

    async def _on_disconnected(self, conn: SmallWebRTCConnection) -> None:
        await self._call_event_handler("on_client_disconnected", conn)

    async def _on_suspended(self, conn: SmallWebRTCConnection, reason: str) -> None:
        self._output.suspend()
        log.info("client_suspended", pc_id=conn.pc_id, reason=reason)
        await self._call_event_handler("on_client_suspended", conn, reason)

    async def _on_resumed(self, conn: SmallWebRTCConnection, how: str) -> None:
        log.info("client_resumed", pc_id=conn.pc_id, how=how)
        await self._call_event_handler("on_client_resumed", conn, how)

    async def _on_closed(self, conn: SmallWebRTCConnection) -> None:
        await self._input.stop_readers()
        self._output.detach_tracks()
        await self._call_event_handler("on_client_closed", conn)

    async def _on_app_message(self, conn: SmallWebRTCConnection, message: Any) -> None:
        await self._call_event_handler("on_app_message", message, conn.pc_id)
        await self._input.push_app_message(message)

    async def _on_client_ready(self, conn: SmallWebRTCConnection) -> None:
        await self._call_event_handler("on_client_ready", conn)

    async def _on_client_message(self, conn: SmallWebRTCConnection, msg_type: str, data: Any, request_id: Any) -> None:
        # Awaited, not spawned: the connection checks right after whether the request was answered.
        await self._call_event_handler("on_client_message", msg_type, data, request_id)

    async def _on_disconnect_bot(self, conn: SmallWebRTCConnection) -> None:
        await self._input.request_end()

    async def _on_tracks_changed(self, conn: SmallWebRTCConnection, *args: MediaStreamTrack | str) -> None:
        self._input.tracks_changed()


__all__ = ["SmallWebRTCInputTransport", "SmallWebRTCOutputTransport", "SmallWebRTCTransport"]
