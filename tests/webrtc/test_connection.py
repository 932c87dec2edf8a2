"""SmallWebRTCConnection without HTTP: API contract, ICE/codec helpers, data channel handling."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import structlog
from aiortc import RTCSessionDescription

from runner.limits import DEFAULT_LIMITS
from runner.webrtc import IceServer, InvalidCandidateError, SignalingError, SmallWebRTCConnection
from runner.webrtc.codecs import UnknownCodecError, normalize_codec_name, supported_codecs, validate_codecs
from runner.webrtc.datachannel import SIGNALLING_PEER_LEFT, DataChannelLink
from runner.webrtc.ice import normalize_ice_servers, parse_candidate, rewrite_host_candidates
from tests.support.peer import TestPeer, ToneTrack

pytestmark = pytest.mark.timeout(30)

LOOPBACK = ["127.0.0.1"]


async def pair(conn: SmallWebRTCConnection, **peer_kwargs: Any) -> TestPeer:
    """Connect a TestPeer to ``conn`` in-process (no HTTP), trickling its candidates."""
    peer = TestPeer("http://unused", **peer_kwargs)
    pc = peer._build_pc()
    sdp, candidates = await peer._make_offer(pc)
    await conn.initialize(sdp=sdp, type="offer")
    answer = conn.get_answer()
    assert answer is not None
    peer.pc, peer.pc_id, peer.answer = pc, answer["pc_id"], answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    await conn.add_ice_candidates([*candidates, {"candidate": "", "sdp_mid": "0", "sdp_mline_index": 0}])
    return peer


def record(conn: SmallWebRTCConnection, *names: str) -> list[tuple[str, tuple[Any, ...]]]:
    events: list[tuple[str, tuple[Any, ...]]] = []
    for name in names:
        conn.add_event_handler(name, lambda _c, *a, n=name: events.append((n, a)))
    return events


async def until(predicate: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - simple polling in tests
            await asyncio.sleep(0.02)


# -- ICE servers, ids, codecs, candidates (no network) ------------------------------------------


def test_ice_servers_normalisation() -> None:
    assert normalize_ice_servers(None) == []
    assert normalize_ice_servers(["stun:a:3478"]) == [IceServer(urls="stun:a:3478")]
    turn = IceServer(urls=["turn:b:3478"], username="u", credential="p")
    assert normalize_ice_servers([turn]) == [turn]
    assert turn.to_dict() == {"urls": ["turn:b:3478"], "username": "u", "credential": "p"}
    with pytest.raises(TypeError):
        normalize_ice_servers(["stun:a", turn])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        SmallWebRTCConnection("stun:a")  # type: ignore[arg-type]


def test_pc_ids_are_unique_and_shaped() -> None:
    ids = {SmallWebRTCConnection().pc_id for _ in range(20)}
    assert len(ids) == 20
    for pc_id in ids:
        name, _, rest = pc_id.partition("#")
        assert name == "SmallWebRTCConnection"
        counter, _, hexpart = rest.partition("-")
        assert counter.isdigit() and len(hexpart) == 32


def test_codec_names() -> None:
    assert {normalize_codec_name(n) for n in ("pcmu", "PCMU/8000", "audio/PCMU", "audio/pcmu/8000")} == {"PCMU"}
    assert normalize_codec_name("OPUS/48000/2") == "opus"
    assert supported_codecs("audio")[:1] == ["opus"] and "PCMU" in supported_codecs("audio")
    assert "VP8" in supported_codecs("video") and "RTX" not in supported_codecs("video")
    assert validate_codecs({"audio": ["pcmu", "opus", "PCMU/8000"]}) == {"audio": ["PCMU", "opus"]}
    with pytest.raises(UnknownCodecError, match="AV1"):
        validate_codecs({"video": ["AV1"]})
    with pytest.raises(UnknownCodecError):
        validate_codecs({"text": ["x"]})


def test_parse_candidate() -> None:
    line = "candidate:3286438502 1 udp 2122194687 192.0.2.2 44100 typ host generation 0 ufrag manN network-id 1"
    cand = parse_candidate({"candidate": line, "sdp_mid": "0", "sdp_mline_index": 0})
    assert cand is not None and cand.ip == "192.0.2.2" and cand.port == 44100 and cand.sdpMid == "0"
    srflx = "candidate:1 1 udp 1686052607 198.51.100.7 5000 typ srflx raddr 10.0.0.1 rport 5000"
    assert parse_candidate({"candidate": srflx, "sdp_mline_index": 1}).relatedAddress == "10.0.0.1"  # type: ignore[union-attr]
    assert parse_candidate({"candidate": "", "sdp_mid": "0"}) is None
    for bad in ("garbage", "candidate:1 1 udp NaN 1.2.3.4 9 typ host", "candidate:1 1 udp 1 1.2.3.4 99999 typ host"):
        with pytest.raises(InvalidCandidateError):
            parse_candidate({"candidate": bad, "sdp_mid": "0"})
    with pytest.raises(InvalidCandidateError, match="sdp_mid"):
        parse_candidate({"candidate": line})
    assert issubclass(InvalidCandidateError, ValueError)


def test_rewrite_host_candidates() -> None:
    sdp = "\r\n".join(
        [
            "c=IN IP4 10.0.0.5",
            "a=candidate:abc 1 udp 2130706431 10.0.0.5 40000 typ host",
            "a=candidate:def 1 udp 1694498815 198.51.100.1 40001 typ srflx raddr 10.0.0.5 rport 40000",
        ]
    )
    out = rewrite_host_candidates(sdp, "203.0.113.9").split("\r\n")
    assert out[0] == "c=IN IP4 203.0.113.9"
    assert out[1] == "a=candidate:abc 1 udp 2130706431 203.0.113.9 40000 typ host"
    assert out[2].endswith("typ srflx raddr 10.0.0.5 rport 40000")


def _log() -> Any:
    return structlog.get_logger("tests.connection")


class FakeSctp:
    async def _data_channel_receive(self, stream_id: int, pp_id: int, data: bytes) -> None:
        pass


class FakeChannel:
    def __init__(self) -> None:
        self.transport = FakeSctp()
        self.readyState = "connecting"
        self.label = "chat"
        self.sent: list[str] = []
        self.handlers: dict[str, Any] = {}
        self.bufferedAmount = 0
        self.bufferedAmountLowThreshold = 0

    def on(self, name: str) -> Any:
        def deco(fn: Any) -> Any:
            self.handlers[name] = fn
            return fn

        return deco

    def send(self, text: str) -> None:
        self.sent.append(text)
        self.bufferedAmount += len(text)  # until the test says SCTP took it

    def sctp_took_everything(self) -> None:
        self.bufferedAmount = 0
        self.handlers["bufferedamountlow"]()


async def test_drain_waits_for_the_channel_to_open_and_empty() -> None:
    link = DataChannelLink(on_ping=lambda: None, on_track_status=lambda i, e: None, on_message=print, logger=_log)
    assert await link.drain(5.0) is False  # no channel and not asked to wait for one
    link.send_json(SIGNALLING_PEER_LEFT)
    drained = asyncio.get_running_loop().create_task(link.drain(10.0, wait_for_open=True))
    await asyncio.sleep(0)
    channel = FakeChannel()
    link.adopt(channel)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert not drained.done() and channel.sent == []
    channel.readyState = "open"
    channel.handlers["open"]()  # the queued peerLeft goes out...
    assert [json.loads(t) for t in channel.sent] == [SIGNALLING_PEER_LEFT]
    await asyncio.sleep(0)
    assert not drained.done()  # ...but is still in aiortc's buffer
    channel.sctp_took_everything()
    assert await drained is True
    assert await link.drain(0.01) is True  # nothing buffered: at once
    channel.send("x")
    assert await link.drain(0.05) is False  # bounded: SCTP never took it
    channel.readyState = "closed"
    channel.handlers["close"]()
    assert await link.drain(5.0, wait_for_open=True) is False  # a closed channel will not drain


def test_datachannel_queue_and_dispatch() -> None:
    got: dict[str, list[Any]] = {"ping": [], "status": [], "msg": []}
    link = DataChannelLink(
        on_ping=lambda: got["ping"].append(1),
        on_track_status=lambda i, e: got["status"].append((i, e)),
        on_message=got["msg"].append,
        logger=_log,
    )
    queued = DEFAULT_LIMITS.max_outgoing_queue
    for i in range(queued + 5):
        link.send_json({"n": i})
    channel = FakeChannel()
    link.adopt(channel)  # type: ignore[arg-type]
    assert channel.sent == []
    channel.readyState = "open"
    channel.handlers["open"]()
    assert [json.loads(t)["n"] for t in channel.sent] == list(range(queued))
    assert link.junk.counts == {"outgoing_queue_full": 5}
    assert link.send_json({"set": {1}}) is False  # not JSON-encodable: warning, no exception
    for text in ("ping: 1795235330336", "not json", "[1,2]", '{"type":"signalling","message":{"type":"nope"}}'):
        link.handle_text(text)
    link.handle_text('{"type":"signalling","message":{"type":"trackStatus","receiver_index":1,"enabled":false}}')
    link.handle_text('{"type":"signalling","message":{"type":"trackStatus","receiver_index":"x","enabled":1}}')
    link.handle_text(b"\xff\xfe")
    link.handle_text('{"label":"rtvi-ai","type":"client-ready"}')
    assert got == {"ping": [1], "status": [(1, False)], "msg": [{"label": "rtvi-ai", "type": "client-ready"}]}


# -- real peers on loopback ---------------------------------------------------------------------


async def test_initialize_rejects_bad_offers_without_leaking() -> None:
    conn = SmallWebRTCConnection([], host_addresses=LOOPBACK)
    for sdp, kind in (("", "offer"), ("v=0\r\ngarbage", "offer"), ("v=0\r\n", "answer"), ("hello", "offer")):
        with pytest.raises(SignalingError):
            await conn.initialize(sdp=sdp, type=kind)
        assert conn.pc is None
    await conn.close()


async def test_full_flow_events_early_messages_and_liveness() -> None:
    conn = SmallWebRTCConnection(None, host_addresses=LOOPBACK, keepalive_timeout_secs=1.0)
    events = record(conn, "connected", "app-message", "track-started", "track-status", "disconnected", "closed")
    conn.send_app_message({"queued": True})  # before the channel exists: queued, then flushed
    peer = await pair(conn, ping_interval=0.2)
    try:
        assert conn.pc is not None and conn.pc.sctp is not None
        ice = conn.pc.sctp.transport.transport.iceGatherer._connection
        assert ice.stun_server is None and ice.turn_server is None  # never aiortc's default Google STUN
        assert "127.0.0.1" in peer.answer["sdp"]  # type: ignore[index]
        await peer.wait_open()
        peer.send({"early": 1})
        await asyncio.sleep(0.3)
        assert [n for n, _ in events].count("connected") == 0  # pipeline not ready yet
        assert not conn.is_connected()
        await conn.connect()
        assert ("app-message", ({"early": 1},)) in events and ("connected", ()) in events
        assert conn.is_connected()
        assert await peer.wait_for(lambda m: m == {"queued": True})
        assert [n for n, _ in events].count("track-started") == 2
        assert conn.audio_input_track() is not None and conn.video_input_track() is not None
        assert conn.screen_video_input_track() is None
        peer.stop_pings()
        await until(lambda: ("closed", ()) in events)
        names = [n for n, _ in events]
        assert names.index("disconnected") < names.index("closed")
        assert names.count("closed") == 1 and conn.pc is None
    finally:
        await peer.close()
        await conn.close()


async def test_restart_swaps_pc_and_keeps_output_track() -> None:
    conn = SmallWebRTCConnection([], host_addresses=LOOPBACK)
    events = record(conn, "connected", "pc-replaced", "closed", "disconnected", "track-started")
    out = ToneTrack(660)
    conn.replace_audio_track(out)
    peer = await pair(conn)
    try:
        await conn.connect()
        await peer.wait_open()
        old_pc, old_id = conn.pc, conn.pc_id
        # restart with a fresh client pc, answered on a fresh server pc
        peer2 = await pair_restart(conn, peer)
        assert conn.pc is not old_pc and conn.pc_id != old_id
        assert old_pc is not None and old_pc.connectionState == "closed"
        assert out.readyState == "live"  # the old pc did not stop our output track
        assert conn.pc is not None and conn.pc.getTransceivers()[0].sender.track is out
        await peer2.wait_open()
        await until(lambda: [n for n, _ in events].count("connected") == 2)
        assert ("pc-replaced", (old_id, conn.pc_id)) in events
        assert "disconnected" not in [n for n, _ in events] and "closed" not in [n for n, _ in events]
        assert [n for n, _ in events].count("track-started") == 4
        await peer2.wait_audio(frames=5, min_level=300.0)
        await peer2.close()
    finally:
        await peer.close()
        await conn.close()


async def pair_restart(conn: SmallWebRTCConnection, old: TestPeer) -> TestPeer:
    peer = TestPeer("http://unused")
    pc = peer._build_pc()
    sdp, candidates = await peer._make_offer(pc)
    await conn.renegotiate(sdp=sdp, type="offer", restart_pc=True)
    answer = conn.get_answer()
    assert answer is not None
    peer.pc, peer.pc_id = pc, answer["pc_id"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    await conn.add_ice_candidates(candidates)
    return peer


async def test_host_addresses_do_not_leak_between_connections() -> None:
    restricted = SmallWebRTCConnection([], host_addresses=LOOPBACK, advertised_address="203.0.113.9")
    default = SmallWebRTCConnection([])
    p1 = await pair(restricted)
    p2 = await pair(default)
    try:
        sdp1, sdp2 = p1.answer["sdp"], p2.answer["sdp"]  # type: ignore[index]
        assert "203.0.113.9" in sdp1 and "127.0.0.1" not in sdp1.split("a=candidate")[1]
        assert " 127.0.0.1 " not in sdp2  # aioice's own default (no loopback) is untouched
    finally:
        for p in (p1, p2):
            await p.close()
        await restricted.close()
        await default.close()


async def test_disconnect_sends_peer_left_and_ask_to_renegotiate() -> None:
    conn = SmallWebRTCConnection([], host_addresses=LOOPBACK)
    events = record(conn, "closed")
    peer = await pair(conn)
    try:
        await conn.connect()
        await peer.wait_open()
        conn.ask_to_renegotiate()
        conn.ask_to_renegotiate()  # debounced
        await peer.wait_for(lambda m: isinstance(m, dict) and m.get("message") == {"type": "renegotiate"})
        await conn.disconnect()
        await peer.wait_for(lambda m: isinstance(m, dict) and m.get("message") == {"type": "peerLeft"})
        renegotiates = [m for m in peer.messages if isinstance(m, dict) and m.get("message") == {"type": "renegotiate"}]
        assert len(renegotiates) == 1
        assert events == [("closed", ())] and not conn.send_app_message({"late": 1})
    finally:
        await peer.close()


async def test_connect_timeout_closes() -> None:
    conn = SmallWebRTCConnection([], host_addresses=LOOPBACK, connection_timeout_secs=0.5)
    events = record(conn, "closed")
    peer = TestPeer("http://unused")
    pc = peer._build_pc()
    sdp, _ = await peer._make_offer(pc)  # candidates never given to the server: ICE cannot finish
    await conn.initialize(sdp=sdp, type="offer")
    try:
        await until(lambda: events == [("closed", ())], within=3.0)
    finally:
        await pc.close()
