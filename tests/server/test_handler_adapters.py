"""The signalling handler mounted in someone else's app: FastAPI under uvicorn, and plain aiohttp.

Real servers on 127.0.0.1, real aiortc peers that hear their echo, PATCHed candidates, ``/start``
sessions, and peerLeft when the host app stops. A property test checks that every adapter
answers bad input exactly as the built-in server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import example, given, settings
from hypothesis import strategies as st

from runner.server import SignallingHandler, aiohttp_routes
from tests.support.asgi_server import load_example, serve_uvicorn
from tests.support.peer import TestPeer, ToneTrack
from tests.support.server import BASE_CONFIG, BotRecorder, start_test_server

pytestmark = pytest.mark.timeout(90)

fastapi_example = load_example("fastapi_app")


def _is_peer_left(message: Any) -> bool:
    return isinstance(message, dict) and message.get("message", {}).get("type") == "peerLeft"


@contextlib.asynccontextmanager
async def serve_aiohttp_mount(handler: SignallingHandler) -> AsyncIterator[str]:
    """A user's own aiohttp app with a route of its own and our signalling routes mounted."""

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "aiohttp"})

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.add_routes(aiohttp_routes(handler))
    app.on_startup.append(lambda _app: handler.startup())
    app.on_shutdown.append(lambda _app: handler.shutdown())
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _start_session(url: str) -> str:
    async with aiohttp.ClientSession() as http_, http_.post(url + "/start", json={"body": {"who": "u"}}) as resp:
        assert resp.status == 200, await resp.text()
        session_id: str = (await resp.json())["sessionId"]
        return session_id


async def test_fastapi_app_serves_its_route_and_our_signalling() -> None:
    recorder = BotRecorder()
    handler = SignallingHandler(BASE_CONFIG, recorder.bot)
    peers: list[TestPeer] = []
    async with serve_uvicorn(fastapi_example.build_app(handler)) as url:
        async with aiohttp.ClientSession() as http_, http_.get(url + "/hello") as resp:
            assert resp.status == 200 and (await resp.json())["hello"] == "from your app"
        session_id = await _start_session(url)
        for path in ("/api/offer", f"/sessions/{session_id}/api/offer"):
            peer = TestPeer(url, offer_path=path, mic=ToneTrack())
            peers.append(peer)
            answer = await peer.connect()
            assert answer["type"] == "answer"
            await peer.wait_open()
            ready = await peer.wait_rtvi("bot-ready", peer.send_client_ready())
            assert ready["data"]["about"]["library"] == "pipeline-run"
            await peer.wait_audio(frames=10, min_level=500.0)
        assert [info.request_data for info in recorder.infos] == [None, {"who": "u"}]
        assert recorder.infos[1].session_id == session_id
        async with aiohttp.ClientSession() as http_, http_.get(url + "/hello") as resp:
            assert (await resp.json())["sessions"]["connected"] == 2
    # uvicorn's shutdown ran the app's lifespan: every session was told and ended
    try:
        for peer in peers:
            await peer.wait_for(_is_peer_left)
        assert recorder.finished + recorder.cancelled == 2
        assert handler.registry.counts()["sessions"] == 0
    finally:
        for peer in peers:
            await peer.close()


async def test_aiohttp_routes_in_a_users_own_app() -> None:
    recorder = BotRecorder()
    handler = SignallingHandler(BASE_CONFIG, recorder.bot)
    peers: list[TestPeer] = []
    async with serve_aiohttp_mount(handler) as url:
        async with aiohttp.ClientSession() as http_, http_.get(url + "/hello") as resp:
            assert await resp.json() == {"hello": "aiohttp"}
        session_id = await _start_session(url)
        for path in ("/api/offer", f"/sessions/{session_id}/api/offer"):
            peer = TestPeer(url, offer_path=path, mic=ToneTrack())
            peers.append(peer)
            await peer.connect()
            await peer.wait_open()
            await peer.wait_rtvi("bot-ready", peer.send_client_ready())
            await peer.wait_audio(frames=10, min_level=500.0)
        assert [info.request_data for info in recorder.infos] == [None, {"who": "u"}]
        try:
            await handler.shutdown()  # the host ends the signalling while its own app keeps serving
            for peer in peers:
                await peer.wait_for(_is_peer_left)
            assert recorder.finished + recorder.cancelled == 2
            async with aiohttp.ClientSession() as http_:
                async with http_.post(url + "/start", json={}) as resp:
                    assert resp.status == 503
                    assert await resp.json() == {"detail": "server is shutting down"}
                async with http_.get(url + "/hello") as resp:
                    assert resp.status == 200
        finally:
            for peer in peers:
                await peer.close()
    assert handler.registry.counts()["sessions"] == 0


# -- every adapter refuses bad input exactly like the built-in server ---------------------------


@pytest.fixture(scope="module")
def three_servers() -> Iterator[dict[str, str]]:
    """The built-in server, a user's aiohttp app and the FastAPI example, in one background loop."""
    loop = asyncio.new_event_loop()
    urls: dict[str, str] = {}
    ready, stop = threading.Event(), asyncio.Event()
    failure: list[BaseException] = []

    async def run() -> None:
        builtin = await start_test_server()
        try:
            async with (
                serve_aiohttp_mount(SignallingHandler(BASE_CONFIG, BotRecorder().bot)) as mounted,
                serve_uvicorn(fastapi_example.build_app(SignallingHandler(BASE_CONFIG, BotRecorder().bot))) as asgi,
            ):
                urls.update(builtin=builtin.url, aiohttp=mounted, asgi=asgi)
                ready.set()
                await stop.wait()
        finally:
            await builtin.runner.cleanup()

    def main() -> None:
        try:
            loop.run_until_complete(run())
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=main, name="three-servers", daemon=True)
    thread.start()
    assert ready.wait(30), "servers did not start"
    assert not failure, failure
    try:
        yield urls
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
    assert not failure, failure


def _ask(base: str, method: str, path: str, body: bytes) -> tuple[int, Any, str | None]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None, resp.getheader("Retry-After")
    finally:
        conn.close()


_KEYS = st.sampled_from(["sdp", "type", "pc_id", "candidates", "restart_pc", "requestData", "x"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.sampled_from(["offer", "v=0\r\n"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
_ROUTES = st.sampled_from(
    [
        ("POST", "/api/offer"),
        ("PATCH", "/api/offer"),
        ("POST", "/sessions/no-such-session/api/offer"),
        ("PATCH", "/sessions/no-such-session/api/offer"),
        ("GET", "/status"),
    ]
)


@settings(max_examples=60, deadline=None)
@given(route=_ROUTES, body=st.binary(max_size=64) | _JSON.map(lambda v: json.dumps(v).encode()))
@example(route=("POST", "/api/offer"), body=b"")
@example(route=("POST", "/api/offer"), body=b"[]")
@example(route=("POST", "/api/offer"), body=b"[" * 500 + b"]" * 500)
@example(route=("POST", "/api/offer"), body=b"x" * (BASE_CONFIG.limits.max_body_bytes + 1))
@example(route=("POST", "/api/offer"), body=b'{"sdp": "v=0\\r\\n", "type": "offer"}')
@example(route=("PATCH", "/api/offer"), body=b'{"pc_id": "nobody", "candidates": []}')
@example(route=("POST", "/api/offer"), body=b"\xff\xfe{")
def test_every_adapter_answers_like_the_builtin_server(
    three_servers: dict[str, str], route: tuple[str, str], body: bytes
) -> None:
    method, path = route
    answers = {name: _ask(url, method, path, body) for name, url in three_servers.items()}
    assert answers["aiohttp"] == answers["builtin"], answers
    assert answers["asgi"] == answers["builtin"], answers
    status, payload, _ = answers["builtin"]
    assert status < 500, answers
    if status >= 400:
        assert isinstance(payload, dict) and set(payload) == {"detail"} and payload["detail"], payload
