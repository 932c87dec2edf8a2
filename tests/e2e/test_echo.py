"""pipelines/echo.yaml end to end: the real spec, build, server and transport, real aiortc peers."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp
import pytest

from runner.build import make_bot
from runner.plugins import PluginRegistry
from runner.spec import load_spec
from tests.support.cli_server import cli_server
from tests.support.peer import TestPeer, ToneTrack
from tests.support.server import start_test_server

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "pipelines" / "echo.yaml"
HEARD = 0.02  # RMS (full scale 1.0) clearly above silence; the tone is sent at 0.3


@pytest.fixture(scope="module")
def echo_bot():  # type: ignore[no-untyped-def]
    return make_bot(load_spec(ECHO, PluginRegistry.discover()))


@pytest.mark.timeout(60)
async def test_client_hears_its_own_tone_and_gets_bot_ready(echo_bot) -> None:  # type: ignore[no-untyped-def]
    server = await start_test_server(echo_bot)
    try:
        async with TestPeer(server.url, mic=ToneTrack(440.0, 0.3)) as peer:
            await peer.connect()
            await peer.wait_open()
            ready_id = peer.send_client_ready()
            ready = await peer.wait_rtvi("bot-ready", ready_id)
            assert ready["data"]["version"].startswith("2.")
            assert ready["data"]["capabilities"]["audio_in"] is True
            assert ready["data"]["capabilities"]["audio_out"] is True
            await peer.wait_audio(frames=25, min_level=HEARD, within=15)
    finally:
        await server.runner.cleanup()


@pytest.mark.timeout(60)
async def test_silent_microphone_gets_silence_back(echo_bot) -> None:  # type: ignore[no-untyped-def]
    server = await start_test_server(echo_bot)
    try:
        async with TestPeer(server.url, mic=ToneTrack(440.0, 0.0)) as peer:
            await peer.connect()
            await peer.wait_open()
            await peer.wait_rtvi("bot-ready", peer.send_client_ready())
            for _ in range(150):  # audio flows (paced silence) ...
                if peer.audio_frames >= 100:
                    break
                await asyncio.sleep(0.1)
            assert peer.audio_frames >= 100
            assert max(peer.audio_levels) < HEARD / 4  # ... and none of it is loud
    finally:
        await server.runner.cleanup()


@pytest.mark.timeout(60)
async def test_session_is_freed_when_the_client_leaves(echo_bot) -> None:  # type: ignore[no-untyped-def]
    server = await start_test_server(echo_bot)
    try:
        peer = TestPeer(server.url, mic=ToneTrack(440.0, 0.3))
        await peer.connect()
        await peer.wait_open()
        await peer.wait_rtvi("bot-ready", peer.send_client_ready())
        await peer.close()
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                async with http.get(server.url + "/status") as response:
                    status = await response.json()
                if status.get("sessions", status.get("active_sessions", 1)) == 0:
                    break
                await asyncio.sleep(0.1)
        assert status.get("sessions", status.get("active_sessions")) == 0, status
    finally:
        await server.runner.cleanup()


@pytest.mark.timeout(90)
async def test_the_command_serves_echo_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    async with cli_server([str(ECHO)], tmp_path / "server.log") as server:
        async with TestPeer(server.url, mic=ToneTrack(440.0, 0.3)) as peer:
            await peer.connect()
            await peer.wait_open()
            await peer.wait_rtvi("bot-ready", peer.send_client_ready())
            await peer.wait_audio(frames=25, min_level=HEARD, within=15)
            server.process.send_signal(signal.SIGTERM)
            # Shutdown tells every client before closing.
            await peer.wait_for(lambda m: isinstance(m, dict) and m.get("message", {}).get("type") == "peerLeft", 10)
        assert await asyncio.wait_for(server.process.wait(), 15) == 0
        logs = server.log()
        assert "Traceback" not in logs
        events = [json.loads(line)["event"] for line in logs.splitlines() if line.startswith("{")]
        assert "session_started" in events and "server_shutdown" in events
