"""End-to-end signalling with real aiortc peers over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.peer import TestPeer, ToneTrack
from tests.support.server import RunningServer, StartServer

pytestmark = pytest.mark.timeout(30)


async def test_offer_answer_bot_ready_and_echo(server: RunningServer) -> None:
    async with TestPeer(server.url, mic=ToneTrack()) as peer:
        answer = await peer.connect()
        assert set(answer) == {"sdp", "type", "pc_id"}
        assert answer["type"] == "answer"
        assert answer["pc_id"].startswith("SmallWebRTCConnection#")
        assert len(answer["pc_id"].rsplit("-", 1)[1]) == 32
        sdp = answer["sdp"]
        assert "a=group:BUNDLE 0 1 2" in sdp
        assert "127.0.0.1" in sdp and "a=end-of-candidates" in sdp
        await peer.wait_open()
        ready_id = peer.send_client_ready()
        ready = await peer.wait_rtvi("bot-ready", ready_id)
        assert ready["label"] == "rtvi-ai"
        assert ready["data"]["version"] == "2.2.0"
        assert ready["data"]["about"]["library"] == "pipeline-run"
        assert ready["data"]["capabilities"]["audio_out"] is True
        await peer.wait_audio(frames=10, min_level=500.0)  # the tone came back through the echo bot
        assert len(server.recorder.infos) == 1
        assert server.recorder.infos[0].pc_id == answer["pc_id"]


async def test_app_messages_and_track_status(server: RunningServer) -> None:
    async with TestPeer(server.url) as peer:
        await peer.connect()
        await peer.wait_open()
        peer.send({"hello": "world"})
        peer.send_track_status(0, False)
        await server.recorder.wait_event("app-message")
        await server.recorder.wait_event("track-status", 3)
        statuses = [args for name, args in server.recorder.events if name == "track-status"]
        assert statuses[:2] == [(0, True), (1, True)] and statuses[-1] == (0, False)
        conn = server.recorder.connections[0]
        assert conn.track_enabled(0) is False
        assert conn.send_app_message({"label": "rtvi-ai", "type": "server-message", "data": {"x": 1}})
        msg = await peer.wait_for(lambda m: isinstance(m, dict) and m.get("type") == "server-message")
        assert msg["data"] == {"x": 1}
        assert any(args == ({"hello": "world"},) for name, args in server.recorder.events if name == "app-message")


async def test_rtvi_client_message_unknown_and_unanswered(server: RunningServer) -> None:
    async with TestPeer(server.url) as peer:
        await peer.connect()
        await peer.wait_open()
        await peer.wait_rtvi("bot-ready", peer.send_client_ready())
        rid = peer.send_rtvi("client-message", {"t": "weather", "d": {"city": "Oslo"}})
        resp = await peer.wait_rtvi("server-response", rid)
        assert resp["data"] == {"t": "weather", "d": {"echo": {"city": "Oslo"}}}
        bad = peer.send_rtvi("bogus-type", {})
        err = await peer.wait_rtvi("error-response", bad)
        assert err["data"] == {"error": "Unsupported type bogus-type"}
        server.recorder.answer_client_messages = False
        rid2 = peer.send_rtvi("client-message", {"t": "nobody", "d": None})
        err2 = await peer.wait_rtvi("error-response", rid2)
        assert "nobody" in err2["data"]["error"]


async def test_bot_ready_waits_for_connect(start_server: StartServer) -> None:
    gate = asyncio.Event()

    async def slow_bot(conn, info):  # type: ignore[no-untyped-def]
        await gate.wait()
        await conn.connect()
        await asyncio.sleep(5)

    srv = await start_server(bot=slow_bot)
    async with TestPeer(srv.url) as peer:
        await peer.connect()
        await peer.wait_open()
        rid = peer.send_client_ready()
        with pytest.raises(TimeoutError):
            await peer.wait_rtvi("bot-ready", rid, within=0.5)
        gate.set()
        await peer.wait_rtvi("bot-ready", rid)


async def test_renegotiate_same_pc(server: RunningServer) -> None:
    async with TestPeer(server.url) as peer:
        first = await peer.connect()
        await peer.wait_open()
        second = await peer.renegotiate()
        assert second["pc_id"] == first["pc_id"]
        assert len(server.recorder.infos) == 1
        peer.send({"after": "renegotiate"})
        await server.recorder.wait_event("app-message")


async def test_restart_pc_keeps_session(server: RunningServer) -> None:
    async with TestPeer(server.url, mic=ToneTrack()) as peer:
        first = await peer.connect()
        await peer.wait_open()
        await peer.wait_rtvi("bot-ready", peer.send_client_ready())
        await server.recorder.wait_event("connected")
        second = await peer.connect(restart=True)
        assert second["pc_id"] != first["pc_id"]
        await peer.wait_open()
        await peer.wait_rtvi("bot-ready", peer.send_client_ready())
        await server.recorder.wait_event("connected", 2)
        assert len(server.recorder.infos) == 1  # the bot factory ran once
        assert ("pc-replaced", (first["pc_id"], second["pc_id"])) in server.recorder.events
        assert "disconnected" not in server.recorder.names()
        # the old id still routes to the session for late trickled candidates
        resp = await peer.patch({"pc_id": first["pc_id"], "candidates": [{"candidate": "", "sdp_mid": "0"}]})
        assert resp.status == 200
        # echo resumed on the new pc
        peer.audio_levels.clear()
        await peer.wait_audio(frames=10, min_level=500.0)
        assert server.registry.counts()["sessions"] == 1


async def test_trickle_patch_and_end_of_candidates(server: RunningServer) -> None:
    async with TestPeer(server.url, trickle=True) as peer:
        answer = await peer.connect()  # PATCHes candidates incl. an empty end-of-candidates entry
        await peer.wait_open()
        resp = await peer.patch({"pc_id": answer["pc_id"], "candidates": [{"candidate": "", "sdp_mid": "1"}]})
        assert resp.status == 200 and await resp.json() == {"status": "success"}


async def test_offer_with_inline_candidates(server: RunningServer) -> None:
    async with TestPeer(server.url, trickle=False) as peer:
        await peer.connect()
        await peer.wait_open()


async def test_codec_preferences(start_server: StartServer) -> None:
    srv = await start_server(codecs={"audio": ["PCMU", "opus"], "video": ["VP8"]})
    async with TestPeer(srv.url) as peer:
        answer = await peer.connect()
        audio_m = next(line for line in answer["sdp"].split("\r\n") if line.startswith("m=audio"))
        assert audio_m.split()[3] == "0"  # PCMU first
        assert "H264" not in answer["sdp"]
    async with TestPeer(srv.url, audio_codec="opus/48000/2") as peer:
        answer = await peer.connect()  # the client filtered to opus: its choice wins
        assert "opus/48000" in answer["sdp"] and "PCMU/8000" not in answer["sdp"]
        await peer.wait_open()


async def test_client_filtered_pcmu_wins(start_server: StartServer) -> None:
    srv = await start_server(codecs={"audio": ["opus"]})
    async with TestPeer(srv.url, audio_codec="PCMU/8000", mic=ToneTrack()) as peer:
        answer = await peer.connect()
        rtpmaps = [line for line in answer["sdp"].split("\r\n") if line.startswith("a=rtpmap:") and "/8000" in line]
        assert any("PCMU/8000" in line for line in rtpmaps)
        assert "opus" not in answer["sdp"].split("m=video")[0]
        await peer.wait_open()
        await peer.wait_audio(frames=10, min_level=300.0)


async def test_start_and_session_routes(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(server.url + "/start", json={"transport": "webrtc", "body": {"user": "ada"}}) as resp:
            assert resp.status == 200
            started = await resp.json()
        assert started["iceConfig"] == {"iceServers": []}
        sid = started["sessionId"]
        async with http.get(f"{server.url}/sessions/{sid}/anything/else") as resp:
            assert resp.status == 200 and await resp.read() == b""
        async with http.get(f"{server.url}/sessions/nope/api/offer") as resp:
            assert resp.status == 404
            assert "session" in (await resp.json())["detail"]
        async with http.get(server.url + "/status") as resp:
            status = await resp.json()
        assert status["status"] == "ready" and status["sessions"] == 1
    async with TestPeer(server.url, offer_path=f"/sessions/{sid}/api/offer") as peer:
        await peer.connect()
        await peer.wait_open()
        await peer.wait_rtvi("bot-ready", peer.send_client_ready())
        assert server.recorder.infos[0].session_id == sid
        assert server.recorder.infos[0].request_data == {"user": "ada"}
        second = await peer.connect(restart=True)
        assert second["pc_id"] != server.recorder.infos[0].pc_id
        assert len(server.recorder.infos) == 1


async def test_request_data_camel_case_on_direct_route(server: RunningServer) -> None:
    async with TestPeer(server.url) as peer:
        peer.request_data = None
        pc = peer._build_pc()
        sdp, _ = await peer._make_offer(pc)
        body = {"sdp": sdp, "type": "offer", "pc_id": None, "restart_pc": False, "requestData": {"k": 1}}
        async with await peer.post_offer(body) as resp:
            assert resp.status == 200
        await pc.close()
    assert server.recorder.infos[0].request_data == {"k": 1}


async def test_cors_preflight_and_headers(start_server: StartServer) -> None:
    srv = await start_server(cors_origins=["http://app.test"])
    async with aiohttp.ClientSession() as http:
        headers = {"Origin": "http://app.test", "Access-Control-Request-Method": "PATCH"}
        async with http.options(srv.url + "/api/offer", headers=headers) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "http://app.test"
            assert "PATCH" in resp.headers["Access-Control-Allow-Methods"]
            assert "Content-Type" in resp.headers["Access-Control-Allow-Headers"]
        async with http.get(srv.url + "/status", headers={"Origin": "http://evil.test"}) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers
