"""Bad input gets a clear 4xx JSON answer, leaks nothing, and the server keeps serving."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.support.peer import TestPeer
from tests.support.server import RunningServer

pytestmark = pytest.mark.timeout(30)

GARBAGE_SDP = "v=0\r\nthis is not sdp\r\n"
NO_ICE_SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"


async def _assert_still_serves(server: RunningServer) -> None:
    async with TestPeer(server.url) as peer:
        await peer.connect()
        await peer.wait_open()


async def _send(server: RunningServer, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.request(method, server.url + path, **kwargs) as resp:
        try:
            body = await resp.json(content_type=None)
        except ValueError:
            body = await resp.text()
        return resp.status, body


OFFER_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("malformed json", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
    ("empty body", {"data": b""}, 400),
    ("json array", {"json": [1, 2]}, 400),
    ("missing sdp", {"json": {"type": "offer"}}, 400),
    ("sdp wrong type", {"json": {"sdp": 42, "type": "offer"}}, 400),
    ("garbage sdp", {"json": {"sdp": GARBAGE_SDP, "type": "offer"}}, 400),
    ("not sdp at all", {"json": {"sdp": "hello", "type": "offer"}}, 400),
    ("sdp without ice", {"json": {"sdp": NO_ICE_SDP, "type": "offer"}}, 400),
    ("wrong type", {"json": {"sdp": "v=0\r\n", "type": "answer"}}, 400),
    ("pc_id not a string", {"json": {"sdp": "v=0\r\n", "type": "offer", "pc_id": 5}}, 400),
    ("restart_pc not bool", {"json": {"sdp": "v=0\r\n", "type": "offer", "restart_pc": "yes"}}, 400),
    ("oversized", {"json": {"sdp": "v=0\r\n" + "a" * 300_000, "type": "offer"}}, 413),
    ("deeply nested", {"data": b"[" * 100_000 + b"]" * 100_000}, 400),  # was a 500 (RecursionError)
    ("nested past the depth limit", {"data": b'{"sdp": ' + b"[" * 40 + b"]" * 40 + b"}"}, 400),
    ("not utf-8", {"data": b'{"sdp": "\xff\xfe", "type": "offer"}'}, 400),
]


@pytest.mark.parametrize(("case", "kwargs", "status"), OFFER_CASES, ids=[c[0] for c in OFFER_CASES])
async def test_bad_offers(server: RunningServer, case: str, kwargs: dict[str, Any], status: int) -> None:
    got, body = await _send(server, "POST", "/api/offer", **kwargs)
    assert got == status, body
    assert isinstance(body, dict) and isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in body["detail"]
    assert server.registry.counts()["sessions"] == 0
    assert server.recorder.infos == []
    await _assert_still_serves(server)


async def test_bad_patches(server: RunningServer) -> None:
    async with TestPeer(server.url) as peer:
        answer = await peer.connect()
        await peer.wait_open()
        pc_id = answer["pc_id"]
        cases: list[tuple[Any, int]] = [
            ({"pc_id": "SmallWebRTCConnection#9-deadbeef", "candidates": []}, 404),
            ({"candidates": []}, 400),
            ({"pc_id": pc_id}, 400),
            ({"pc_id": pc_id, "candidates": "nope"}, 400),
            ({"pc_id": pc_id, "candidates": [{"candidate": "garbage", "sdp_mid": "0"}]}, 400),
            (
                {
                    "pc_id": pc_id,
                    "candidates": [{"candidate": "candidate:1 1 udp x 1.2.3.4 9 typ host", "sdp_mid": "0"}],
                },
                400,
            ),
            ({"pc_id": pc_id, "candidates": [{"candidate": "candidate:1 1 udp 1 1.2.3.4 9 typ host"}]}, 400),
            ({"pc_id": pc_id, "candidates": [{"candidate": 7, "sdp_mid": "0"}]}, 400),
            ({"pc_id": pc_id, "candidates": [5]}, 400),
            ({"pc_id": pc_id, "candidates": [{"candidate": "", "sdp_mid": 3}]}, 200),  # end marker: fields ignored
        ]
        for body, status in cases:
            got, reply = await _send(server, "PATCH", "/api/offer", json=body)
            assert got == status, (body, reply)
            assert "detail" in reply if status != 200 else reply == {"status": "success"}
        got, reply = await _send(server, "PATCH", "/api/offer", data=b"{oops")
        assert got == 400 and "JSON" in reply["detail"]
        # the session survived all that
        peer.send({"still": "alive"})
        await server.recorder.wait_event("app-message")
    await _assert_still_serves(server)


async def test_unknown_routes_and_methods(server: RunningServer) -> None:
    got, body = await _send(server, "GET", "/nope")
    assert got == 404 and "detail" in body
    got, body = await _send(server, "DELETE", "/api/offer")
    assert got == 405 and "detail" in body
    got, body = await _send(server, "POST", "/sessions/unknown/api/offer", json={"sdp": "v=0", "type": "offer"})
    assert got == 404 and "session" in body["detail"]
    got, body = await _send(server, "POST", "/start", json={"transport": "daily"})
    assert got == 400
    got, body = await _send(server, "POST", "/start", data=b"[")
    assert got == 400
    await _assert_still_serves(server)


async def test_second_offer_on_started_session_conflicts(server: RunningServer) -> None:
    _, started = await _send(server, "POST", "/start", json={})
    path = f"/sessions/{started['sessionId']}/api/offer"
    async with TestPeer(server.url, offer_path=path) as peer:
        await peer.connect()
        async with TestPeer(server.url, offer_path=path) as intruder:
            with pytest.raises(AssertionError, match="409"):
                await intruder.connect()
        await peer.wait_open()
