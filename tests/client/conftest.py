"""Fixtures for the client tests (the server fixtures live in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.client.client_helpers import SignallingProxy, echo_pipeline_bot
from tests.support.server import RunningServer, StartServer


@pytest.fixture
async def echo_server(start_server: StartServer) -> RunningServer:
    """A server running the real echo pipeline of pipelines/echo.yaml."""
    return await start_server(echo_pipeline_bot())


@pytest.fixture
async def proxy(server: RunningServer) -> AsyncIterator[SignallingProxy]:
    """A switchable proxy in front of ``server``."""
    hop = SignallingProxy(server.url)
    await hop.start()
    yield hop
    await hop.stop()
