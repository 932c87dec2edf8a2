"""Fixtures shared by the test groups: a real signalling server on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

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
    """A default server whose bot echoes raw audio and records what it saw."""
    return await start_server()
