"""Liveness, capacity, concurrency and shutdown of sessions."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from runner.server.sessions import SessionState
from runner.webrtc import SmallWebRTCConnection
from tests.support.peer import TestPeer, ToneTrack
from tests.support.server import RunningServer, StartServer

pytestmark = pytest.mark.timeout(40)


async def wait_sessions(srv: RunningServer, count: int, within: float = 5.0) -> None:
    """Poll until the registry holds ``count`` sessions."""
    async with asyncio.timeout(within):
        while srv.registry.counts()["sessions"] != count:  # noqa: ASYNC110 - polling the registry is the point
            await asyncio.sleep(0.05)


async def status(srv: RunningServer) -> dict[str, Any]:
    """``GET /status`` as a client sees it."""
    async with aiohttp.ClientSession() as http, http.get(srv.url + "/status") as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def wait_echo(peer: TestPeer, more: int = 25, within: float = 10.0) -> None:
    """Wait until ``more`` further audible frames of the echo arrived."""
    heard = sum(1 for level in peer.audio_levels if level > 500)
    await peer.wait_audio(frames=heard + more, min_level=500, within=within)


async def start_session(srv: RunningServer) -> str:
    """``POST /start``: a pending session's id."""
    async with aiohttp.ClientSession() as http, http.post(srv.url + "/start", json={}) as resp:
        assert resp.status == 200
        session_id: str = (await resp.json())["sessionId"]
        return session_id


async def echo_peer(srv: RunningServer, flow: str) -> TestPeer:
    """A connected, pinging peer with a tone microphone, on ``/api/offer`` or a ``/start`` session."""
    path = "/api/offer" if flow == "api" else f"/sessions/{await start_session(srv)}/api/offer"
    peer = TestPeer(srv.url, offer_path=path, ping_interval=0.25, mic=ToneTrack())
    await peer.connect()
    await peer.wait_open()
    await wait_echo(peer)
    return peer


async def ask(peer: TestPeer, payload: Any) -> Any:
    """A client-message request; the echo bot answers ``{"echo": payload}``."""
    msg_id = peer.send_rtvi("client-message", {"t": "ask", "d": payload})
    return (await peer.wait_rtvi("server-response", msg_id))["data"]["d"]


async def test_vanished_client_is_suspended_and_resumes_when_pings_return(start_server: StartServer) -> None:
    srv = await start_server(keepalive_timeout_secs=1.0)
    async with await echo_peer(srv, "api") as peer:
        connection = srv.recorder.connections[0]
        peer.stop_pings()  # the client "vanishes": no pings, no DTLS close
        await srv.recorder.wait_event("suspended")
        assert await status(srv) == {
            "status": "ready",
            "transports": ["webrtc"],
            "sessions": 1,
            "connected": 0,
            "suspended": 1,
            "max_sessions": 32,
        }
        assert not connection.is_connected() and connection.suspended
        assert await ask(peer, 1) == {"echo": 1}  # the bot and its data channel are still there
        sender = connection.pc.getTransceivers()[0].sender if connection.pc else None
        assert sender is not None and sender.track is None  # nothing is encoded or paced toward it
        peer.start_pings()
        await srv.recorder.wait_event("resumed")
        assert sender.track is srv.recorder.connections[0]._audio_out is not None
        await wait_echo(peer)
        names = srv.recorder.names()
        assert ("resumed", ("pings_returned",)) in srv.recorder.events
        assert names.index("suspended") < names.index("resumed")
        assert "disconnected" not in names and "closed" not in names
        assert (await status(srv))["connected"] == 1 and len(srv.recorder.infos) == 1
    await srv.recorder.wait_event("closed")


@pytest.mark.parametrize("flow", ["api", "start"])
async def test_restart_resumes_the_suspended_session(start_server: StartServer, flow: str) -> None:
    srv = await start_server(keepalive_timeout_secs=1.0)
    async with await echo_peer(srv, flow) as peer:
        first_pc_id = peer.pc_id
        peer.stop_pings()
        await srv.recorder.wait_event("suspended")
        answer = await peer.connect(restart=True)  # a new pc, offered with the old pc_id
        assert answer["pc_id"] != first_pc_id
        await srv.recorder.wait_event("resumed")
        await wait_echo(peer)  # the same echo bot, heard on the new pc
        assert ("resumed", ("restart",)) in srv.recorder.events
        assert srv.recorder.names().count("pc-replaced") == 1
        assert len(srv.recorder.infos) == 1 and "closed" not in srv.recorder.names()
        # a late PATCH with the superseded pc_id still reaches the session (PROTOCOL 2.4)
        end = {"candidate": "", "sdp_mid": "0", "sdp_mline_index": 0}
        async with await peer.patch({"pc_id": first_pc_id, "candidates": [end]}) as resp:
            assert resp.status == 200
        assert await ask(peer, "after") == {"echo": "after"}
        counts = srv.registry.counts()
        assert (counts["sessions"], counts["connected"], counts["suspended"]) == (1, 1, 0)
    await srv.recorder.wait_event("closed")
    await wait_sessions(srv, 0)


async def test_restart_resumes_even_after_the_old_pc_closed(start_server: StartServer) -> None:
    """ICE consent lost mid-blackout closes aiortc's pc: the suspended session must still resume."""
    srv = await start_server(keepalive_timeout_secs=1.0)
    async with await echo_peer(srv, "api") as peer:
        peer.stop_pings()
        await srv.recorder.wait_event("suspended")
        old_pc = srv.recorder.connections[0].pc
        assert old_pc is not None
        await old_pc.close()  # what aiortc does itself once consent freshness has failed
        async with asyncio.timeout(5):
            while srv.recorder.connections[0].pc is old_pc and old_pc.connectionState != "closed":  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert srv.registry.counts()["suspended"] == 1
        await peer.connect(restart=True)
        await srv.recorder.wait_event("resumed")
        await wait_echo(peer)
        assert len(srv.recorder.infos) == 1 and "closed" not in srv.recorder.names()


async def test_concurrent_first_offers_on_one_start_session(start_server: StartServer) -> None:
    srv = await start_server()
    session_id = await start_session(srv)
    peers = [TestPeer(srv.url, offer_path=f"/sessions/{session_id}/api/offer") for _ in range(2)]
    try:
        results = await asyncio.gather(*(p.connect() for p in peers), return_exceptions=True)
        refused = [r for r in results if isinstance(r, AssertionError)]
        assert len(refused) == 1 and "409" in str(refused[0]), results
        assert len(srv.recorder.infos) == 1
    finally:
        await asyncio.gather(*(p.close() for p in peers))


async def test_after_the_resume_window_the_session_ends(start_server: StartServer) -> None:
    srv = await start_server(keepalive_timeout_secs=1.0, resume_window_secs=1.0)
    session_id = await start_session(srv)
    async with TestPeer(srv.url, offer_path=f"/sessions/{session_id}/api/offer", ping_interval=0.25) as peer:
        await peer.connect()
        await peer.wait_open()
        peer.stop_pings()
        await srv.recorder.wait_event("closed")
        names = srv.recorder.names()
        assert names.index("suspended") < names.index("disconnected") < names.index("closed")
        assert "resumed" not in names
        await wait_sessions(srv, 0)
        assert srv.recorder.finished == 1
        # a restart now is refused on the session's own route: the session is gone
        body = {"sdp": peer.answer["sdp"] if peer.answer else "", "type": "offer", "pc_id": peer.pc_id}
        async with await peer.post_offer({**body, "restart_pc": True}) as resp:
            assert resp.status == 404
            assert (await resp.json())["detail"] == "Invalid or not-yet-ready session_id"


async def test_restart_after_the_window_on_api_offer_is_a_new_session(start_server: StartServer) -> None:
    """Like the reference: an unknown pc_id on ``/api/offer`` is a new session with a new bot."""
    srv = await start_server(keepalive_timeout_secs=1.0, resume_window_secs=1.0)
    async with TestPeer(srv.url, ping_interval=0.25) as peer:
        await peer.connect()
        await peer.wait_open()
        peer.stop_pings()
        await srv.recorder.wait_event("closed")
        await wait_sessions(srv, 0)
        await peer.connect(restart=True)
        await peer.wait_open()
        assert len(srv.recorder.infos) == 2
        assert srv.recorder.infos[0].session_id != srv.recorder.infos[1].session_id
        await wait_sessions(srv, 1)


async def test_client_close_ends_session_at_once(server: RunningServer) -> None:
    peer = TestPeer(server.url)
    await peer.connect()
    await peer.wait_open()
    await peer.close()
    await server.recorder.wait_event("closed", within=5.0)  # well inside the 30 s resume window
    names = server.recorder.names()
    assert names.index("disconnected") < names.index("closed")
    assert "suspended" not in names
    await wait_sessions(server, 0)


async def test_a_slot_is_held_until_the_bot_has_finished(start_server: StartServer) -> None:
    finish = asyncio.Event()

    async def lingering_bot(conn: SmallWebRTCConnection, info: Any) -> None:
        closed = asyncio.Event()
        conn.add_event_handler("closed", lambda _c: closed.set())
        await conn.connect()
        await closed.wait()
        await finish.wait()  # e.g. a bot still saving its transcript

    srv = await start_server(bot=lingering_bot, max_sessions=1, bot_grace_secs=30.0)
    first = TestPeer(srv.url)
    await first.connect()
    await first.wait_open()
    await first.close()
    async with asyncio.timeout(5):
        while srv.registry.sessions()[0].state is not SessionState.ENDING:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert (await status(srv))["sessions"] == 1
    async with TestPeer(srv.url) as second:
        with pytest.raises(AssertionError, match="503"):
            await second.connect()
    finish.set()
    await wait_sessions(srv, 0)
    async with TestPeer(srv.url) as third:
        await third.connect()
        await third.wait_open()


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
    # the slot frees once the first client is gone and its bot has finished
    await srv.recorder.wait_event("closed", within=5.0)
    await wait_sessions(srv, 0)
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
