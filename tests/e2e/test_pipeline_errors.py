"""Errors in a running bot, seen from a real aiortc client of the real server.

* a processor's own task raises: the client gets the RTVI ``error`` (``fatal: true``), then
  ``peerLeft`` and the close; the server logs it once and keeps serving everyone else;
* a plugin reports a non-fatal error (the OpenAI LLM against a local API that refuses the key):
  the client gets ``error`` with ``fatal: false``, without the key, and the session goes on;
* an event handler raises: logged, and the session goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from aiohttp import web

from runner.build import make_bot
from runner.plugins import PluginRegistry
from runner.server import SessionInfo
from runner.spec import parse_spec
from runner.webrtc import SmallWebRTCConnection
from tests.support.faults import registry_with_bomb
from tests.support.peer import TestPeer, ToneTrack
from tests.support.server import RunningServer, start_test_server

pytestmark = pytest.mark.timeout(90)

HEARD = 0.02  # RMS of the echoed 0.3 tone is far above this
API_KEY = "sk-test-4f1d9a07c2e8b6"


def broken_handler(ctx: Any) -> None:
    """A spec's ``call`` target with a bug."""
    raise LookupError(f"handler bug on {ctx.event}")


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return registry_with_bomb()


def _spec(processors: str, events: str = "") -> str:
    return f"""
version: 1
ice: {{servers: [], host_addresses: [127.0.0.1]}}
transport:
  {{audio_in_enabled: true, audio_out_enabled: true, audio_in_sample_rate: 16000, audio_out_sample_rate: 16000}}
pipeline: {{audio_in_sample_rate: 16000, audio_out_sample_rate: 16000}}
processors:
{processors}
events:
  on_client_disconnected: [{{action: end}}]
{events}
"""


def _capture() -> Any:
    return structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars])


def _errors(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["log_level"] in ("error", "critical")]


def _rtvi_errors(peer: TestPeer) -> list[dict[str, Any]]:
    return [m for m in peer.messages if isinstance(m, dict) and m.get("type") == "error"]


def _is_peer_left(message: Any) -> bool:
    return isinstance(message, dict) and message.get("message") == {"type": "peerLeft"}


async def _ready(peer: TestPeer) -> None:
    await peer.connect()
    await peer.wait_open()
    await peer.wait_rtvi("bot-ready", peer.send_client_ready())
    await peer.wait_audio(frames=10, min_level=HEARD, within=20)


async def _hears_more(peer: TestPeer, frames: int = 25) -> None:
    """The echo keeps coming: ``frames`` more loud frames than so far."""
    loud = sum(1 for level in peer.audio_levels if level > HEARD)
    await peer.wait_audio(frames=loud + frames, min_level=HEARD, within=20)


async def _until(predicate: Any, within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling state set by other tasks
            await asyncio.sleep(0.05)


@pytest.fixture
async def bomb_server(registry: PluginRegistry) -> AsyncIterator[RunningServer]:
    spec = parse_spec(_spec("  - {id: echo, type: audio.echo}\n  - {id: bomb, type: test.bomb}"), registry)
    server = await start_test_server(make_bot(spec))
    try:
        yield server
    finally:
        await server.runner.cleanup()


async def test_a_failing_processor_task_ends_only_its_own_session(bomb_server: RunningServer) -> None:
    registry = bomb_server.registry
    with _capture() as logs:
        async with (
            TestPeer(bomb_server.url, mic=ToneTrack(440.0, 0.3)) as victim,
            TestPeer(bomb_server.url, mic=ToneTrack(660.0, 0.3)) as bystander,
        ):
            await _ready(victim)
            await _ready(bystander)
            assert victim.pc_id is not None
            session = registry.by_pc_id(victim.pc_id)
            assert session is not None and registry.counts()["sessions"] == 2

            victim.send({"bomb": "task"})
            error = await victim.wait_rtvi("error")
            assert error == {
                "label": "rtvi-ai",
                "type": "error",
                "data": {"error": "RuntimeError: detonated", "fatal": True},
            }
            await victim.wait_for(_is_peer_left)
            error_at = victim.messages.index(error)
            assert error_at < next(i for i, m in enumerate(victim.messages) if _is_peer_left(m))
            await _until(lambda: victim.pc is not None and victim.pc.connectionState == "closed")
            await _until(lambda: registry.get(session.session_id) is None)  # freed, not leaked
            assert len(_rtvi_errors(victim)) == 1

            await _hears_more(bystander)  # the other session never noticed
            assert _rtvi_errors(bystander) == [] and registry.counts()["sessions"] == 1
            async with TestPeer(bomb_server.url, mic=ToneTrack(440.0, 0.3)) as newcomer:
                await _ready(newcomer)  # and the server still takes new clients
    errors = _errors(logs)
    assert [(e["event"], e["owner"], e["task"]) for e in errors] == [("task_failed", "bomb", "bomb-fuse")]
    assert errors[0]["error"] == "RuntimeError: detonated" and isinstance(errors[0]["exc_info"], RuntimeError)
    assert errors[0]["session_id"] == session.session_id


async def test_an_error_pushed_downstream_reaches_the_client_too(bomb_server: RunningServer) -> None:
    async with TestPeer(bomb_server.url, mic=ToneTrack(440.0, 0.3)) as peer:
        await _ready(peer)
        peer.send({"bomb": "dud"})
        error = await peer.wait_rtvi("error")
        assert error["data"] == {"error": "dud went off", "fatal": False}
        await _hears_more(peer)  # not fatal: the session goes on
        assert bomb_server.registry.counts()["sessions"] == 1


@pytest.fixture
async def refusing_api() -> AsyncIterator[tuple[str, list[str]]]:
    """A local stand-in for the chat API that refuses the key, quoting it as real APIs do."""
    seen: list[str] = []

    async def completions(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        error = {"error": {"message": f"Incorrect API key provided: {API_KEY}.", "type": "invalid_request_error"}}
        return web.json_response(error, status=401)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1", seen
    finally:
        await runner.cleanup()


async def test_a_non_fatal_error_reaches_the_client_without_secrets(
    registry: PluginRegistry, refusing_api: tuple[str, list[str]]
) -> None:
    pytest.importorskip("pipeline_run_llm_openai")
    base_url, seen = refusing_api
    processors = (
        "  - {id: echo, type: audio.echo}\n"
        f"  - {{id: llm, type: llm.openai, base_url: '{base_url}', api_key: '{API_KEY}', fallback: ''}}"
    )
    events = "  on_app_message: [{action: push_frame, frame: TranscriptionFrame, text: 'hello there'}]"
    server = await start_test_server(make_bot(parse_spec(_spec(processors, events), registry)))
    try:
        async with TestPeer(server.url, mic=ToneTrack(440.0, 0.3)) as peer:
            await _ready(peer)
            # client-ready is an app message too (as in the reference): that was request 1
            await _until(lambda: len(_rtvi_errors(peer)) == 1)
            for attempt in (2, 3):  # more requests prove the pipeline is still alive after an error
                peer.send({"ask": attempt})
                await _until(lambda attempt=attempt: len(_rtvi_errors(peer)) == attempt)  # type: ignore[misc]
                await _hears_more(peer)
            assert seen == [f"Bearer {API_KEY}"] * 3  # the key did go where it belongs
            for error in _rtvi_errors(peer):
                assert error["data"]["fatal"] is False
                assert "HTTP 401: Incorrect API key provided: ***." in error["data"]["error"]
            assert API_KEY not in repr(peer.messages)
            assert not [m for m in peer.messages if _is_peer_left(m)]
            assert server.registry.counts()["sessions"] == 1
    finally:
        await server.runner.cleanup()


async def test_a_raising_event_handler_is_logged_and_the_session_goes_on(registry: PluginRegistry) -> None:
    events = f"  on_app_message: [{{action: call, target: '{__name__}:broken_handler'}}]"
    spec_bot = make_bot(parse_spec(_spec("  - {id: echo, type: audio.echo}", events), registry))

    async def bot(connection: SmallWebRTCConnection, info: SessionInfo) -> None:
        def raw_handler(_conn: SmallWebRTCConnection, message: Any) -> None:  # a library user's handler
            raise ValueError(f"bad message {message!r}")

        connection.add_event_handler("app-message", raw_handler)
        await spec_bot(connection, info)

    server = await start_test_server(bot)
    try:
        with _capture() as logs:
            async with TestPeer(server.url, mic=ToneTrack(440.0, 0.3)) as peer:
                await _ready(peer)
                # every app message (client-ready is one) fails both handlers: two lines each
                await _until(lambda: len(_errors(logs)) == 2)
                for count in (2, 3, 4):
                    peer.send({"n": count})
                    await _until(lambda count=count: len(_errors(logs)) == 2 * count)  # type: ignore[misc]
                await _hears_more(peer)
                reply = await peer.wait_rtvi("bot-ready", peer.send_client_ready())  # the channel still answers
                assert reply["data"]["version"].startswith("2.")
                await _until(lambda: len(_errors(logs)) == 10)
                assert _rtvi_errors(peer) == [] and server.registry.counts()["sessions"] == 1
        events_logged = sorted(e["event"] for e in _errors(logs))
        assert events_logged == ["action_failed"] * 5 + ["event_handler_failed"] * 5
        assert all(e.get("session_id") for e in _errors(logs))
    finally:
        await server.runner.cleanup()
