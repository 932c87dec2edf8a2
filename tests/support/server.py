"""Server-side test helpers: a recording echo bot and a server started on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from runner.server import ServerConfig, SessionInfo, create_app
from runner.server.app import app_runner
from runner.webrtc import SmallWebRTCConnection

BASE_CONFIG = ServerConfig(
    host="127.0.0.1",
    port=0,
    ice_servers=[],
    host_addresses=["127.0.0.1"],
    connect_timeout_secs=10.0,
    bot_grace_secs=0.5,
)


class EchoTrack(MediaStreamTrack):
    """Sends back whatever the client's current microphone track delivers (follows restarts)."""

    kind = "audio"

    def __init__(self, connection: SmallWebRTCConnection) -> None:
        super().__init__()
        self.connection = connection

    async def recv(self) -> Any:
        """Next frame of the client's mic."""
        # no readyState check: aiortc stops a sender's track when its pc closes, and this track
        # must survive a pc dropped behind the connection's back to follow the next pc
        while True:
            source = self.connection.audio_input_track()
            if source is not None:
                with contextlib.suppress(MediaStreamError):
                    return await source.recv()
            await asyncio.sleep(0.02)


@dataclass
class BotRecorder:
    """What the echo bot saw, per test."""

    infos: list[SessionInfo] = field(default_factory=list)
    connections: list[SmallWebRTCConnection] = field(default_factory=list)
    events: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    finished: int = 0
    cancelled: int = 0
    answer_client_messages: bool = True

    def names(self) -> list[str]:
        """Event names in order."""
        return [name for name, _ in self.events]

    async def wait_event(self, name: str, count: int = 1, within: float = 10.0) -> None:
        """Wait until ``name`` was seen ``count`` times."""
        async with asyncio.timeout(within):
            while self.names().count(name) < count:  # noqa: ASYNC110 - polling a list is fine in tests
                await asyncio.sleep(0.02)

    async def bot(self, connection: SmallWebRTCConnection, info: SessionInfo) -> None:
        """The echo bot factory."""
        self.infos.append(info)
        self.connections.append(connection)
        for name in (
            "connected",
            "disconnected",
            "closed",
            "track-status",
            "app-message",
            "pc-replaced",
            "suspended",
            "resumed",
        ):
            connection.add_event_handler(name, self._recorder(name))
        closed = asyncio.Event()
        connection.add_event_handler("closed", lambda _c: closed.set())

        @connection.event_handler("client-message")
        async def _on_client_message(conn: SmallWebRTCConnection, t: str, d: Any, request_id: str | None) -> None:
            self.events.append(("client-message", (t, d, request_id)))
            if self.answer_client_messages and request_id is not None:
                conn.send_server_response(request_id, t, {"echo": d})

        connection.set_bot_capabilities({"audio_in": True, "audio_out": True})
        connection.replace_audio_track(EchoTrack(connection))
        try:
            await connection.connect()
            if not connection.closed:
                await closed.wait()
            self.finished += 1
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(_conn: SmallWebRTCConnection, *args: Any) -> None:
            self.events.append((name, args))

        return record


@dataclass
class RunningServer:
    """A started server: its base URL, app and bot recorder."""

    url: str
    app: web.Application
    recorder: BotRecorder
    runner: web.AppRunner

    @property
    def registry(self) -> Any:
        """The app's session registry."""
        from runner.server.app import REGISTRY_KEY

        return self.app[REGISTRY_KEY]


StartServer = Callable[..., Awaitable[RunningServer]]


async def start_test_server(bot: Any = None, **overrides: Any) -> RunningServer:
    """Start a server on an ephemeral loopback port; stop it with ``await server.runner.cleanup()``."""
    recorder = BotRecorder()
    config = replace(BASE_CONFIG, **overrides)
    app = create_app(config, bot or recorder.bot)
    runner = app_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return RunningServer(f"http://127.0.0.1:{port}", app, recorder, runner)
