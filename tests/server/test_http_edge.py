"""The HTTP edge on real networks: bodies in pieces, offer shape, candidate budgets, request rates."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from runner.limits import Limits
from tests.support.peer import TestPeer, ToneTrack, strip_candidates
from tests.support.server import RunningServer, StartServer

pytestmark = pytest.mark.timeout(60)


async def raw_request(
    base_url: str, method: str, path: str, body: bytes, *, pieces: int = 4, pause: float = 0.3
) -> tuple[int, dict[str, str], Any]:
    """Send one HTTP/1.1 request over a plain socket in ``pieces`` writes (headers split too)."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    wire = head + body
    cuts = sorted({len(head) // 2, *(len(head) + len(body) * i // pieces for i in range(1, pieces))})
    try:
        start = 0
        for cut in [*cuts, len(wire)]:
            writer.write(wire[start:cut])
            await writer.drain()
            start = cut
            await asyncio.sleep(pause)
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(payload) if payload else None


async def _offer_pc(mic: ToneTrack) -> tuple[RTCPeerConnection, str, list[dict[str, Any]]]:
    """An aiortc client pc (audio + data channel) and its offer without inline candidates."""
    peer = TestPeer("http://unused", mic=mic)
    pc = peer._build_pc()
    sdp, candidates = await peer._make_offer(pc)
    return pc, sdp, candidates


async def test_offer_and_patch_in_pieces_get_normal_answers(server: RunningServer) -> None:
    mic = ToneTrack()
    pc, sdp, candidates = await _offer_pc(mic)
    received: list[int] = []

    @pc.on("track")
    def _on_track(track: Any) -> None:
        async def read() -> None:
            while True:
                await track.recv()
                received.append(1)

        asyncio.get_running_loop().create_task(read())

    try:
        body = json.dumps({"sdp": sdp, "type": "offer", "pc_id": None, "restart_pc": False}).encode()
        status, _, answer = await raw_request(server.url, "POST", "/api/offer", body, pieces=3)
        assert status == 200, answer
        assert answer["type"] == "answer" and answer["pc_id"].startswith("SmallWebRTCConnection#")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        end = {"candidate": "", "sdp_mid": "0", "sdp_mline_index": 0}
        patch = json.dumps({"pc_id": answer["pc_id"], "candidates": [*candidates, end]}).encode()
        status, _, reply = await raw_request(server.url, "PATCH", "/api/offer", patch, pieces=3)
        assert (status, reply) == (200, {"status": "success"})
        async with asyncio.timeout(20):
            while len(received) < 25:  # noqa: ASYNC110 - the echo reached the raw-socket client
                await asyncio.sleep(0.05)
        assert server.registry.counts()["connected"] == 1
    finally:
        await pc.close()
        mic.stop()


async def test_chunked_body_over_the_limit_is_413(start_server: StartServer) -> None:
    srv = await start_server(limits=Limits(max_body_bytes=4096))

    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000

    async with aiohttp.ClientSession() as http, http.post(srv.url + "/api/offer", data=chunks()) as resp:
        body = await resp.json()
    assert resp.status == 413 and "4096" in body["detail"]
    assert srv.registry.counts()["sessions"] == 0


# -- offer shape ------------------------------------------------------------------------------------


async def _aiortc_offer(audio: int = 1, video: int = 1, data: bool = True) -> str:
    pc = RTCPeerConnection()
    for _ in range(audio):
        pc.addTransceiver("audio", direction="sendrecv")
    for _ in range(video):
        pc.addTransceiver("video", direction="sendrecv")
    if data:
        pc.createDataChannel("chat")
    from runner.webrtc.ice import restrict_host_addresses

    restrict_host_addresses(pc, ["127.0.0.1"])
    await pc.setLocalDescription(await pc.createOffer())
    sdp = strip_candidates(pc.localDescription.sdp)[0]
    await pc.close()
    return sdp


def _drop(sdp: str, prefix: str) -> str:
    return "\r\n".join(line for line in sdp.split("\r\n") if not line.startswith(prefix))


def _section_copy(sdp: str, kind: str, times: int) -> str:
    """Append ``times`` copies of the first ``kind`` section (new mids), as a flooding client would."""
    lines = sdp.rstrip("\r\n").split("\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(f"m={kind} "))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("m=")), len(lines))
    section = lines[start:end]
    extra = []
    for n in range(times):
        extra += [f"a=mid:x{n}" if line.startswith("a=mid:") else line for line in section]
    return "\r\n".join(lines + extra) + "\r\n"


SHAPE_CASES: list[tuple[str, Any, str]] = [
    ("no fingerprint", lambda s: _drop(s, "a=fingerprint"), "a=fingerprint"),
    ("no ice-ufrag", lambda s: _drop(s, "a=ice-ufrag"), "a=ice-ufrag"),
    ("no ice-pwd", lambda s: _drop(s, "a=ice-pwd"), "a=ice-pwd"),
    ("no setup", lambda s: _drop(s, "a=setup"), "a=setup"),
    ("100 audio m-lines", lambda s: _section_copy(s, "audio", 99), "audio m-line"),
    ("3 video m-lines", lambda s: _section_copy(s, "video", 2), "video m-line"),
    ("2 application m-lines", lambda s: _section_copy(s, "application", 1), "application m-line"),
    ("unknown kind", lambda s: re.sub(r"^m=video ", "m=text ", s, flags=re.M), "unknown media kind 'text'"),
    (
        "too many codecs",
        lambda s: s.replace(" UDP/TLS/RTP/SAVPF ", " UDP/TLS/RTP/SAVPF " + " ".join(["96"] * 70) + " ", 1),
        "formats",
    ),
    (
        "dns-name candidate",
        lambda s: s.replace("a=mid:0\r\n", "a=mid:0\r\na=candidate:1 1 udp 1 resolver.example 9 typ host\r\n", 1),
        "mDNS",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "reason"), SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
async def test_bad_offer_shape_refused_before_any_pc(
    server: RunningServer, case: str, mutate: Any, reason: str
) -> None:
    good = await _aiortc_offer()
    threads = threading.active_count()
    sdp = mutate(good)
    assert sdp != good
    for path in ("/api/offer", None):
        if path is None:  # the /start flow: its session stays pending, without a pc
            assert server.registry.counts()["sessions"] == 0
            path = f"/sessions/{await _start(server)}/api/offer"
        async with (
            aiohttp.ClientSession() as http,
            http.post(server.url + path, json={"sdp": sdp, "type": "offer"}) as r,
        ):
            body = await r.json()
        assert r.status == 400, body
        assert reason in body["detail"], body
    assert server.recorder.connections == [] and server.recorder.infos == []
    assert server.registry.counts()["connected"] == 0
    assert threading.active_count() <= threads
    async with TestPeer(server.url) as peer:  # the server still serves
        await peer.connect()
        await peer.wait_open()


async def _start(server: RunningServer) -> str:
    async with aiohttp.ClientSession() as http, http.post(server.url + "/start", json={}) as r:
        sid: str = (await r.json())["sessionId"]
    return sid


async def test_the_protocols_full_shape_is_accepted(server: RunningServer) -> None:
    """audio + camera + screen + one data channel: what the JS client sends, at the default limits."""
    async with TestPeer(server.url, screen=True) as peer:
        answer = await peer.connect()
        assert answer["sdp"].count("m=video") == 2
        await peer.wait_open()


# -- candidates -------------------------------------------------------------------------------------


def _loopback_candidate(port: int) -> dict[str, Any]:
    return {"candidate": f"candidate:{port} 1 udp 2122260223 127.0.0.1 {port} typ host", "sdp_mid": "0"}


async def test_candidate_budgets_per_patch_and_per_pc(start_server: StartServer) -> None:
    srv = await start_server(limits=Limits(max_candidates_per_pc=8, max_candidates_per_patch=5))
    async with TestPeer(srv.url) as peer:
        answer = await peer.connect()  # trickles its own 1-2 loopback candidates
        await peer.wait_open()
        pc_id = answer["pc_id"]

        async def patch(candidates: list[dict[str, Any]]) -> tuple[int, Any]:
            async with await peer.patch({"pc_id": pc_id, "candidates": candidates}) as resp:
                return resp.status, await resp.json()

        status, body = await patch([_loopback_candidate(40000 + i) for i in range(6)])
        assert status == 400 and "at most 5" in body["detail"]
        assert peer.pc is not None
        lines = peer.pc.localDescription.sdp.split("\r\n")  # what connect() trickled, once per m-line
        own = len({tuple(line.split()[1:6]) for line in lines if line.startswith("a=candidate:")})
        accepted = 0
        for port in range(41000, 41020):
            status, body = await patch([_loopback_candidate(port)])
            if status != 200:
                break
            accepted += 1
            assert await patch([_loopback_candidate(port)]) == (200, {"status": "success"})  # a repeat is free
        assert status == 400 and "at most 8" in body["detail"], body
        assert own + accepted == 8
        peer.send({"still": "here"})  # refusals never end the session
        await srv.recorder.wait_event("app-message")
        assert srv.registry.counts()["connected"] == 1


async def test_inline_candidates_count_against_the_pc_budget(start_server: StartServer) -> None:
    srv = await start_server(limits=Limits(max_candidates_per_pc=3))
    sdp = await _aiortc_offer()
    lines = "".join(f"a=candidate:{i} 1 udp 1 127.0.0.1 {43000 + i} typ host\r\n" for i in range(4))
    flooded = sdp.replace("a=mid:0\r\n", "a=mid:0\r\n" + lines, 1)
    async with (
        aiohttp.ClientSession() as http,
        http.post(srv.url + "/api/offer", json={"sdp": flooded, "type": "offer"}) as r,
    ):
        body = await r.json()
    assert r.status == 400 and "4 ICE candidates" in body["detail"]
    assert srv.registry.counts()["sessions"] == 0


# -- request rates ----------------------------------------------------------------------------------


async def test_patch_rate_is_429_with_retry_after_and_the_session_lives(start_server: StartServer) -> None:
    srv = await start_server(limits=Limits(patch_burst=3, patch_rate_per_sec=0.01))
    async with TestPeer(srv.url, mic=ToneTrack()) as peer:
        answer = await peer.connect()  # its own PATCH took one token
        await peer.wait_open()
        statuses = []
        for _ in range(4):
            async with await peer.patch({"pc_id": answer["pc_id"], "candidates": []}) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    retry_after, detail = resp.headers["Retry-After"], (await resp.json())["detail"]
        assert statuses == [200, 200, 429, 429]
        assert int(retry_after) >= 1 and "PATCH" in detail
        frames = peer.audio_frames
        await peer.wait_audio(frames=frames + 25)  # echo keeps coming back
        assert srv.registry.counts()["connected"] == 1


async def test_renegotiation_rate_is_429_and_the_session_lives(start_server: StartServer) -> None:
    srv = await start_server(limits=Limits(renegotiation_burst=1, renegotiations_per_min=0.1))
    async with TestPeer(srv.url) as peer:
        first = await peer.connect()
        await peer.wait_open()
        second = await peer.renegotiate()
        assert second["pc_id"] == first["pc_id"]
        assert peer.pc is not None
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
        body = {"sdp": peer.pc.localDescription.sdp, "type": "offer", "pc_id": first["pc_id"], "restart_pc": False}
        async with await peer.post_offer(body) as resp:
            assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
            assert "renegotiations" in (await resp.json())["detail"]
        peer.send({"still": "here"})
        await srv.recorder.wait_event("app-message")
        assert srv.registry.counts()["connected"] == 1


# -- malformed HTTP ---------------------------------------------------------------------------------


async def _exchange(base_url: str, request: bytes) -> bytes:
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


FRAMING_CASES = [
    # aiohttp's own Expect handler crashed on this one (a 500 before any middleware)
    ("non-utf-8 Expect", b"PUT /api/offer HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect:\xae1\r\n", b"null", 417),
    (
        "bad chunk size",
        b"POST /api/offer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n",
        b"zz\r\nab\r\n0\r\n\r\n",
        400,
    ),
    (
        "undecodable gzip",
        b"POST /start HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Encoding: gzip\r\n",
        b"\x01\x02\x03\x04",
        400,
    ),
    ("unknown method on a known path", b"DELETE /start HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n", b"", 405),
]


@pytest.mark.parametrize(("case", "head", "body", "status"), FRAMING_CASES, ids=[c[0] for c in FRAMING_CASES])
async def test_malformed_http_is_a_4xx(server: RunningServer, case: str, head: bytes, body: bytes, status: int) -> None:
    answer = await _exchange(server.url, head + b"Connection: close\r\n\r\n" + body)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()) or answer.startswith(f"HTTP/1.0 {status} ".encode()), (
        answer
    )
    assert server.registry.counts()["sessions"] == 0
    async with TestPeer(server.url) as peer:  # the server still serves
        await peer.connect()
        await peer.wait_open()
