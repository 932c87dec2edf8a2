"""Hostile data-channel clients against the real server, with real aiortc peers on loopback.

After every bad frame the same session must still answer: its echo comes back, a
``client-message`` gets its ``server-response``, ``client-ready`` gets ``bot-ready`` and its
pings keep it alive (the server runs with a keepalive timeout). Each kind of junk is warned
once and summed up with its count when the session closes.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiortc import rtcsctptransport
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.build import make_bot
from runner.limits import Limits
from runner.plugins import PluginRegistry
from runner.spec import load_spec
from runner.webrtc import SmallWebRTCConnection
from runner.webrtc.aiortc_internals import guard_receive, missing_sctp_names
from runner.webrtc.junk import JunkKind
from runner.webrtc.rtvi import RtviSession
from tests.support.peer import TestPeer, ToneTrack
from tests.support.server import RunningServer, StartServer
from tests.webrtc.hostile import ask, frames, nested, open_peer, ready, send_raw
from tests.webrtc.test_connection import LOOPBACK, pair, until

pytestmark = pytest.mark.timeout(60)

ECHO = Path(__file__).resolve().parents[2] / "pipelines" / "echo.yaml"
KEEPALIVE_SECS = 2.0  # pings every 0.3 s: a session whose pings stopped counting would end


async def echo_flows(peer: TestPeer) -> None:
    """More loud echo frames arrive than before."""
    loud = sum(1 for level in peer.audio_levels if level > 300.0)
    await peer.wait_audio(frames=loud + 10, min_level=300.0, within=10.0)


def rss_bytes() -> int:
    """Resident memory of this process (server and peers run in it)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def junk_log(logs: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Kinds of the junk warnings in order, and the summary lines."""
    warned = [e["kind"] for e in logs if e["event"] == "client_junk" and e["log_level"] == "warning"]
    return warned, [e for e in logs if e["event"] == "client_junk_summary"]


TEXT = rtcsctptransport.WEBRTC_STRING
HOSTILE: list[tuple[str, Any]] = [
    ("too_deep", nested(30_000)),  # RecursionError in json.loads used to end the session
    ("not_json", "x" * (60 * 1024)),
    ("binary_not_utf8", b"\xff\xfe\x00\x80junk"),
    ("binary_not_utf8", (TEXT, b"\xff{\xfe")),  # a *text* frame that is not UTF-8: aiortc itself choked
    ("too_large", (TEXT, b'{"a": "' + b"y" * (64 * 1024) + b'"}')),
    ("unexpected_json", "[1, 2, 3]"),
    ("bad_signalling", {"type": "signalling", "message": {"type": "trackStatus", "receiver_index": "0"}}),
    ("bad_signalling", {"type": "signalling", "message": {"type": "trackStatus", "receiver_index": 10**9}}),
    ("bad_signalling", {"type": "signalling", "message": ["peerLeft"]}),
    ("bad_rtvi", {"label": "rtvi-ai", "type": ["client-ready"], "id": "x1"}),
    ("bad_rtvi", {"label": "rtvi-ai", "type": "client-message", "id": {"a": 1}, "data": {"t": "q"}}),
    ("bad_rtvi", {"label": "rtvi-ai", "type": "client-message", "id": "z" * 5000, "data": {"t": "q"}}),
    ("unsupported_rtvi_type", {"label": "rtvi-ai", "type": "bogus", "id": "b1", "data": [[[]]]}),
    (None, b'{"binary": "but JSON"}'),  # a binary frame of UTF-8 JSON is an ordinary app message
    ("bad_rtvi", {"label": "rtvi-ai", "type": "send-text", "id": 5.5}),
]


async def test_each_hostile_frame_leaves_the_session_answering(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(keepalive_timeout_secs=KEEPALIVE_SECS)
    expected: Counter[str] = Counter()
    with structlog.testing.capture_logs() as logs:
        peer, conn = await open_peer(server, mic=ToneTrack(440), ping_interval=0.3)
        try:
            pc_id = conn.pc_id
            await echo_flows(peer)
            for step, (kind, frame) in enumerate(HOSTILE):
                if isinstance(frame, tuple):
                    await send_raw(peer, *frame)
                else:
                    peer.channel.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))  # type: ignore[union-attr]
                if kind is not None:
                    expected[kind] += 1
                await ask(peer)  # ordered channel: the frame was handled before this was answered
                assert conn.junk_counts == expected, f"after step {step} ({kind})"
                if step % 4 == 0:
                    await ready(peer)
            await asyncio.sleep(KEEPALIVE_SECS + 0.5)  # a whole keepalive window: its pings still count
            await ask(peer)
            await echo_flows(peer)
            assert conn.pc_id == pc_id and not conn.closed
            assert server.registry.counts()["sessions"] == 1
            assert "closed" not in server.recorder.names() and "disconnected" not in server.recorder.names()
            assert {"binary": "but JSON"} in [a[0] for n, a in server.recorder.events if n == "app-message"]
            errors = [m for m in peer.messages if isinstance(m, dict) and m.get("type") == "error-response"]
            assert {m.get("id") for m in errors} == {"x1", "b1"}  # usable ids get an answer, others none
        finally:
            await peer.close()
        await server.recorder.wait_event("closed")
    warned, summaries = junk_log(logs)
    assert sorted(warned) == sorted(expected)  # exactly one warning per kind
    assert len(summaries) == 1 and summaries[0]["counts"] == dict(expected) and summaries[0]["pc_id"] == pc_id
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]
    assert not [r for r in caplog.records if "Traceback" in r.getMessage()]


async def test_the_echo_spec_shrugs_off_the_same_frames(start_server: StartServer) -> None:
    """pipelines/echo.yaml (its reply/when handlers see the client's data) takes the same abuse."""
    bot = make_bot(load_spec(ECHO, PluginRegistry.discover()))
    server = await start_server(bot=bot, keepalive_timeout_secs=KEEPALIVE_SECS)
    with structlog.testing.capture_logs() as logs:
        peer = TestPeer(server.url, mic=ToneTrack(440), ping_interval=0.3)
        try:
            await peer.connect()
            await peer.wait_open()
            await ready(peer)
            for _kind, frame in HOSTILE:
                if isinstance(frame, tuple):
                    await send_raw(peer, *frame)
                else:
                    peer.channel.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))  # type: ignore[union-attr]
            await ask(peer, reply=lambda token: token)  # the spec replies with the request's own data
            await ready(peer)
            await echo_flows(peer)
            assert server.registry.counts()["sessions"] == 1
        finally:
            await peer.close()
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]


async def test_a_flood_is_bounded_counted_and_survived(start_server: StartServer) -> None:
    limits = Limits(message_burst=300, messages_per_sec=50, max_inbox_messages=50)
    gate = asyncio.Event()
    flood, inbox = 2000, limits.max_inbox_messages

    async def bot(connection: SmallWebRTCConnection, info: Any) -> None:
        async def hold(_conn: SmallWebRTCConnection, message: Any) -> None:
            if "flood" in message:
                await gate.wait()  # the bot is busy: the inbox has to hold (and bound) the rest

        connection.add_event_handler("app-message", hold)
        await server.recorder.bot(connection, info)

    server = await start_server(bot=bot, limits=limits)
    with structlog.testing.capture_logs() as logs:
        peer, conn = await open_peer(server, ping_interval=0)
        try:
            threads, rss = threading.active_count(), rss_bytes()
            for i in range(flood):
                peer.send({"flood": i, "pad": "p" * 200})
            # one message is in the handler, `inbox` wait: every other one is dropped and counted
            await until(lambda: sum(conn.junk_counts.values()) == flood - 1 - inbox, within=30.0)
            counts = conn.junk_counts
            assert set(counts) == {"rate_limited", "inbox_full"}
            accepted = flood - counts["rate_limited"]
            assert accepted >= limits.message_burst - 3  # the burst (less trackStatus x2, client-ready) got in
            assert counts["inbox_full"] == accepted - 1 - inbox
            assert threading.active_count() <= threads + 1  # no thread per message
            assert rss_bytes() - rss < 64 * 2**20  # coarse: nothing kept per message beyond the bounds
            gate.set()

            def delivered() -> list[int]:
                return [a[0]["flood"] for n, a in server.recorder.events if n == "app-message" and "flood" in a[0]]

            await until(lambda: len(delivered()) == 1 + inbox)
            got = delivered()
            assert got[:inbox] == list(range(inbox)) and got == sorted(set(got))  # oldest kept, in order
            await ask(peer)
            await ready(peer)
            await asyncio.sleep(0.1)
            assert len(delivered()) == 1 + inbox and not conn.closed
            assert conn.junk_counts["inbox_full"] == counts["inbox_full"]
            final = conn.junk_counts
        finally:
            await peer.close()
        await server.recorder.wait_event("closed")
    warned, summaries = junk_log(logs)
    assert sorted(warned) == ["inbox_full", "rate_limited"]  # 1,949 drops, two warnings
    assert [s["counts"] for s in summaries] == [final]


async def test_extra_data_channels_are_bounded_and_the_newest_is_used(start_server: StartServer) -> None:
    server = await start_server(limits=Limits(max_data_channels=2))
    peer, conn = await open_peer(server, ping_interval=0)
    try:
        assert peer.pc is not None and peer.channel is not None
        old = peer.channel
        second = peer.pc.createDataChannel("second")
        third = peer.pc.createDataChannel("third")

        @second.on("message")
        def _on_message(data: str) -> None:
            peer.messages.append(json.loads(data))
            peer._new_message.set()

        await until(lambda: second.readyState == "open" and third.readyState == "closed", within=10.0)
        old.send('{"on": "the replaced channel"}')
        await until(lambda: conn.junk_counts.get("stale_channel") == 1)
        peer.channel = second  # the last channel opened is the one the server reads and writes
        await ask(peer)
        await ready(peer)
        assert conn.junk_counts == {"too_many_channels": 1, "stale_channel": 1}
        assert {"on": "the replaced channel"} not in [a[0] for n, a in server.recorder.events if n == "app-message"]
    finally:
        await peer.close()


async def test_inbox_before_connect_is_bounded_and_replayed_in_order() -> None:
    conn = SmallWebRTCConnection([], host_addresses=LOOPBACK, limits=Limits(max_inbox_messages=20))
    seen: list[Any] = []
    conn.add_event_handler("app-message", lambda _c, m: seen.append(m["n"]))
    peer = await pair(conn, ping_interval=0)
    try:
        await peer.wait_open()
        for n in range(45):
            peer.send({"n": n})
        await until(lambda: conn.junk_counts.get("inbox_full") == 25)
        assert seen == []  # the pipeline is not ready yet
        await conn.connect()
        assert seen == list(range(20))
        peer.send({"n": "after"})
        await until(lambda: seen[-1] == "after")
    finally:
        await peer.close()
        await conn.close()


async def test_peer_left_arrives_before_the_close_even_behind_40_messages() -> None:
    conn = SmallWebRTCConnection([], host_addresses=LOOPBACK)
    peer = await pair(conn, ping_interval=0)
    try:
        await conn.connect()
        await peer.wait_open()
        assert peer.pc is not None
        client_pc = peer.pc

        @client_pc.on("connectionstatechange")
        def _state() -> None:
            peer.messages.append(("client_pc", client_pc.connectionState))

        for n in range(40):
            assert conn.send_app_message({"n": n, "pad": "q" * 8000})  # far over SCTP's first window
        await conn.disconnect()
        await until(lambda: ("client_pc", "closed") in peer.messages, within=10.0)
        arrived = [m for m in peer.messages if isinstance(m, dict)]
        assert [m.get("n") for m in arrived[:40]] == list(range(40))
        assert arrived[40:] == [{"type": "signalling", "message": {"type": "peerLeft"}}]
        left = peer.messages.index(arrived[40])
        assert left < peer.messages.index(("client_pc", "closed"))
    finally:
        await peer.close()
        await conn.close()


async def test_generated_frames_over_a_real_channel_never_end_the_session(server: RunningServer) -> None:
    peer, conn = await open_peer(server, ping_interval=0)
    loop = asyncio.get_running_loop()
    sent: list[int] = []

    async def round_trip(batch: list[str | bytes]) -> None:
        for frame in batch:
            peer.channel.send(frame)  # type: ignore[union-attr]
        sent.append(len(batch))
        await ask(peer)

    def draw_while_loop_waits(data: st.DataObject) -> list[str | bytes]:
        # hypothesis checks that nothing touches the global `random` while it draws; aiortc on
        # the loop thread would, so the loop is parked for the few milliseconds of the draw
        parked, release = threading.Event(), threading.Event()
        loop.call_soon_threadsafe(lambda: (parked.set(), release.wait(10)))
        parked.wait(10)
        try:
            batch: list[str | bytes] = data.draw(st.lists(frames, min_size=1, max_size=4))
        finally:
            release.set()
        return batch

    @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data: st.DataObject) -> None:
        batch = draw_while_loop_waits(data)
        asyncio.run_coroutine_threadsafe(round_trip(batch), loop).result(timeout=30)

    try:
        await asyncio.to_thread(check)  # hypothesis drives from a thread; the peer lives on this loop
        await ready(peer)
        assert len(sent) >= 12 and not conn.closed and server.registry.counts()["sessions"] == 1
        assert JunkKind.DISPATCH_FAILED not in conn.junk_counts and "bad_frame" not in conn.junk_counts
    finally:
        await peer.close()


def test_the_sctp_guard_finds_what_it_needs_in_this_aiortc() -> None:
    assert missing_sctp_names() == [], f"aiortc {metadata.version('aiortc')} lacks what guard_receive wraps"

    class NoSeam:
        pass

    assert guard_receive(NoSeam(), lambda exc: None) is False  # a transport without the seam is left alone


async def test_failing_handlers_do_not_make_the_session_deaf(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = SmallWebRTCConnection([], host_addresses=LOOPBACK)
    seen: list[Any] = []

    def app_handler(_conn: SmallWebRTCConnection, message: dict[str, Any]) -> None:
        if message.get("boom"):
            raise ValueError("the bot's own handler failed")
        if "n" in message:
            seen.append(message["n"])

    conn.add_event_handler("app-message", app_handler)
    original = RtviSession.handle

    async def flaky_handle(self: RtviSession, message: dict[str, Any]) -> None:
        if message.get("id") == "explode":
            raise RuntimeError("a bug in RTVI handling")
        await original(self, message)

    monkeypatch.setattr(RtviSession, "handle", flaky_handle)
    peer = await pair(conn, ping_interval=0)
    try:
        await conn.connect()
        await peer.wait_open()
        with structlog.testing.capture_logs() as logs:
            for n in range(3):
                peer.send({"boom": True})
                peer.send_rtvi("client-ready", msg_id="explode")
                peer.send({"n": n})
            await until(lambda: seen == [0, 1, 2])
            await ready(peer)  # the inbox task is still running and RTVI still answers
        assert conn.junk_counts == {"dispatch_failed": 3}
        failed = [e for e in logs if e["event"] == "client_junk"]
        assert len(failed) == 1 and failed[0]["log_level"] == "error" and "a bug in RTVI" in failed[0]["error"]
        assert [e["event"] for e in logs if e["log_level"] == "error"].count("event_handler_failed") == 3
    finally:
        await peer.close()
        await conn.close()
