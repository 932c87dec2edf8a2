"""Liveness, capacity, concurrency and shutdown of sessions."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import aiohttp
import pytest

from tests.support.peer import TestPeer
from tests.support.server import RunningServer, StartServer

pytestmark = pytest.mark.timeout(40)


async def wait_sessions(srv: RunningServer, count: int, within: float = 3.0) -> None:
    """Poll until the registry holds ``count`` sessions."""
    deadline = time.monotonic() + within
    while srv.registry.counts()["sessions"] != count:
        assert time.monotonic() < deadline, srv.registry.counts()
        await asyncio.sleep(0.05)


async def test_vanished_client_is_freed_by_keepalive(start_server: StartServer) -> None:
    srv = await start_server(keepalive_timeout_secs=2.0)
    async with TestPeer(srv.url, ping_interval=0.5) as peer:
        await peer.connect()
        await peer.wait_open()
        await asyncio.sleep(0.8)  # some pings arrive
        assert srv.registry.counts()["sessions"] == 1
        peer.stop_pings()  # the client "vanishes": no pings, no DTLS close
        started = time.monotonic()
        await srv.recorder.wait_event("closed", within=6.0)
        assert time.monotonic() - started < 4.0
        assert srv.recorder.names().index("disconnected") < srv.recorder.names().index("closed")
        await wait_sessions(srv, 0)
        assert srv.registry.counts() == {"sessions": 0, "connected": 0, "max_sessions": srv.registry.max_sessions}
        assert srv.recorder.finished == 1
        await peer.wait_for(lambda m: isinstance(m, dict) and m.get("message", {}).get("type") == "peerLeft", 0.1)


async def test_client_close_ends_session(server) -> None:  # type: ignore[no-untyped-def]
    peer = TestPeer(server.url)
    await peer.connect()
    await peer.wait_open()
    await peer.close()
    await server.recorder.wait_event("closed", within=5.0)
    assert "disconnected" in server.recorder.names()


async def test_bot_that_returns_ends_session(start_server: StartServer) -> None:
    async def short_bot(conn, info):  # type: ignore[no-untyped-def]
        await conn.connect()
        await asyncio.sleep(0.3)

    srv = await start_server(bot=short_bot)
    async with TestPeer(srv.url) as peer:
        await peer.connect()
        await peer.wait_open()
        await peer.wait_for(lambda m: isinstance(m, dict) and m.get("message", {}).get("type") == "peerLeft")
    await wait_sessions(srv, 0)


async def test_crashing_bot_does_not_hurt_server(start_server: StartServer) -> None:
    async def bad_bot(conn, info):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    srv = await start_server(bot=bad_bot)
    async with TestPeer(srv.url) as peer:
        await peer.connect()
    async with aiohttp.ClientSession() as http, http.get(srv.url + "/status") as resp:
        assert resp.status == 200


async def test_max_sessions_refusal(start_server: StartServer) -> None:
    srv = await start_server(max_sessions=1)
    async with TestPeer(srv.url) as first:
        await first.connect()
        await first.wait_open()
        async with TestPeer(srv.url) as second:
            with pytest.raises(AssertionError, match="503"):
                await second.connect()
        async with aiohttp.ClientSession() as http, http.post(srv.url + "/start", json={}) as resp:
            assert resp.status == 503
            assert "full" in (await resp.json())["detail"]
            assert resp.headers["Retry-After"]
    # the slot frees once the first client is gone
    await srv.recorder.wait_event("closed", within=5.0)
    async with TestPeer(srv.url) as third:
        await third.connect()
        await third.wait_open()


async def test_ten_concurrent_sessions(server) -> None:  # type: ignore[no-untyped-def]
    peers = [TestPeer(server.url) for _ in range(10)]
    try:
        answers = await asyncio.gather(*(p.connect() for p in peers))
        await asyncio.gather(*(p.wait_open() for p in peers))
        ids = [p.send_client_ready() for p in peers]
        readies = await asyncio.gather(*(p.wait_rtvi("bot-ready", i) for p, i in zip(peers, ids, strict=True)))
        assert len({a["pc_id"] for a in answers}) == 10
        assert all(r["id"] == i for r, i in zip(readies, ids, strict=True))
        assert server.registry.counts()["connected"] == 10
        assert len({info.session_id for info in server.recorder.infos}) == 10
    finally:
        await asyncio.gather(*(p.close() for p in peers))


async def test_shutdown_sends_peer_left_and_cancels_bots(start_server: StartServer) -> None:
    async def stubborn_bot(conn, info):  # type: ignore[no-untyped-def]
        await conn.connect()
        await asyncio.sleep(60)  # ignores the closed connection; must be cancelled

    srv = await start_server(bot=stubborn_bot)
    async with TestPeer(srv.url) as peer:
        await peer.connect()
        await peer.wait_open()
        await srv.runner.cleanup()
        await peer.wait_for(lambda m: isinstance(m, dict) and m.get("message", {}).get("type") == "peerLeft")
    assert srv.registry.counts()["sessions"] == 0
    assert all(t.done() for t in srv.registry._tasks)


async def test_serve_until_stopped() -> None:
    import socket

    from runner.server import serve
    from tests.support.server import BASE_CONFIG, BotRecorder

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    recorder = BotRecorder()
    stop = asyncio.Event()
    config = replace(BASE_CONFIG, port=port)
    task = asyncio.get_running_loop().create_task(serve(config, recorder.bot, stop=stop))
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            async with aiohttp.ClientSession() as http, http.get(url + "/status") as resp:
                if resp.status == 200:
                    break
        except aiohttp.ClientError:
            await asyncio.sleep(0.05)
    async with TestPeer(url) as peer:
        await peer.connect()
        await peer.wait_open()
        stop.set()
        await asyncio.wait_for(task, 10)
        await peer.wait_for(lambda m: isinstance(m, dict) and m.get("message", {}).get("type") == "peerLeft")
    assert recorder.finished + recorder.cancelled == 1
