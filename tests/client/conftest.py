"""Fixtures for the client tests: a real signalling server on 127.0.0.1 with an echo bot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.client.client_helpers import SignallingProxy, echo_pipeline_bot
from tests.support.server import RunningServer, StartServer, start_test_server


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """Factory: ``await start_server(bot=None, **config)`` -> RunningServer, stopped at teardown."""
    running: list[RunningServer] = []

    async def start(bot: Any = None, **overrides: Any) -> RunningServer:
        server = await start_test_server(bot, **overrides)
        running.append(server)
        return server

    yield start
    for server in running:
        await server.runner.cleanup()


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    """A server whose bot echoes raw audio and answers client-messages (records what it saw)."""
    return await start_server()


@pytest.fixture
async def echo_server(start_server: StartServer) -> RunningServer:
    """A server running the real echo pipeline (falls back to the raw-track echo bot)."""
    return await start_server(echo_pipeline_bot())


@pytest.fixture
async def proxy(server: RunningServer) -> AsyncIterator[SignallingProxy]:
    """A switchable proxy in front of ``server``."""
    hop = SignallingProxy(server.url)
    await hop.start()
    yield hop
    await hop.stop()
