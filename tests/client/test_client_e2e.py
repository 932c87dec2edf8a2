"""The client against the real server of this repo over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runner.client import ClientError, ReconnectPolicy, RequestError, SmallWebRTCClient
from runner.client.media import AudioMeter, ToneSource, WavRecorder, WavSource
from tests.client.client_helpers import SignallingProxy, dominant_frequency, echo_pipeline_bot, write_tone_wav
from tests.support.server import RunningServer, StartServer

pytestmark = pytest.mark.timeout(60)

LOOPBACK = ["127.0.0.1"]


def make_client(**kwargs: Any) -> SmallWebRTCClient:
    """A loopback client."""
    kwargs.setdefault("host_addresses", LOOPBACK)
    return SmallWebRTCClient(**kwargs)


class EventLog:
    """Collects every client event as (name, args)."""

    def __init__(self, client: SmallWebRTCClient) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        for name in client.event_names:
            client.add_event_handler(name, self._recorder(name))

    def _recorder(self, name: str) -> Any:
        def record(_client: SmallWebRTCClient, *args: Any) -> None:
            self.events.append((name, args))

        return record

    def names(self) -> list[str]:
        return [n for n, _ in self.events]

    def args(self, name: str) -> list[tuple[Any, ...]]:
        return [a for n, a in self.events if n == name]

    def states(self) -> list[str]:
        return [a[0] for a in self.args("state-changed")]


async def wait_until(predicate: Any, within: float = 10.0) -> None:
    """Poll ``predicate`` until true."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling in tests
            await asyncio.sleep(0.05)


async def drop_server_pc(server: RunningServer, index: int = 0) -> None:
    """Close the server's aiortc pc behind its connection's back (like a network loss)."""
    pc = server.recorder.connections[index].pc
    assert pc is not None
    pc.remove_all_listeners()
    await pc.close()


async def test_connect_echo_and_record(echo_server: RunningServer, tmp_path: Path) -> None:
    source_path = tmp_path / "in.wav"
    write_tone_wav(source_path, 660.0, 1.5)
    recording = tmp_path / "out.wav"
    recorder = WavRecorder(recording)
    meter = AudioMeter()
    client = make_client(audio_track=WavSource(source_path, loop=True))
    log = EventLog(client)
    client.add_audio_sink(lambda s, _t: recorder.write(s))
    client.add_audio_sink(meter.feed)
    ready = await client.connect(echo_server.url + "/api/offer")
    assert ready["version"].startswith("2.")
    assert client.pc_id and client.pc_id.startswith("SmallWebRTCConnection#")
    await wait_until(lambda: meter.seconds > 2.0)
    await client.disconnect()
    recorder.close()
    assert log.states() == ["initializing", "connecting", "connected", "ready", "disconnecting", "disconnected"]
    assert "bot-ready" in log.names() and "track-started" in log.names()
    assert log.args("disconnected") == [("client disconnected",)]
    assert client.stats.connected_ms is not None and client.stats.bot_ready_ms is not None
    assert client.stats.bot_ready_ms >= client.stats.connected_ms
    with wave.open(str(recording)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert len(data) > 48000
    loud = data[np.abs(data) > 0]
    assert len(loud) > 24000  # the echo carried our tone
    assert dominant_frequency(data[-48000:]) == pytest.approx(660.0, abs=15)
    assert meter.rms_dbfs > -30


async def test_pcmu_codec_is_negotiated(server: RunningServer) -> None:
    client = make_client(audio_track=ToneSource(440.0), audio_codec="PCMU/8000", video_codec="VP8/90000")
    meter = AudioMeter()
    client.add_audio_sink(meter.feed)
    await client.connect(server.url + "/api/offer")
    try:
        assert client.last_offer_sdp is not None and client.last_answer_sdp is not None
        assert "opus" not in client.last_offer_sdp and "H264" not in client.last_offer_sdp
        assert client.stats.negotiated_audio == ["PCMU"]
        assert client.stats.negotiated_video == ["VP8"]
        assert "a=rtpmap:0 PCMU/8000" in client.last_answer_sdp
        await wait_until(lambda: meter.seconds > 0.5)
        assert meter.rms_dbfs > -30
    finally:
        await client.disconnect()


async def test_start_endpoint_messages_and_requests(server: RunningServer) -> None:
    client = make_client()
    log = EventLog(client)
    await client.start_bot_and_connect(server.url + "/start", {"body": {"hello": 1}})
    try:
        assert "/sessions/" in (client._endpoint.url if client._endpoint else "")
        assert client.send_app_message({"plain": True})
        assert await client.send_client_message("weather", {"city": "Oslo"}) == {"echo": {"city": "Oslo"}}
        await server.recorder.wait_event("app-message", 2)
        conn = server.recorder.connections[0]
        conn.send_server_message({"x": 1})
        conn.send_app_message({"label": "rtvi-ai", "type": "bot-started-speaking"})
        await wait_until(lambda: ("server-message", ({"x": 1},)) in log.events)
        await wait_until(lambda: any(a[0].get("type") == "bot-started-speaking" for a in log.args("rtvi-message")))
        server.recorder.answer_client_messages = False
        with pytest.raises(RequestError, match="not answered"):
            await client.send_client_message("unanswered", None, timeout_secs=3.0)
        assert client.stats.messages_out >= 4 and client.stats.messages_in >= 4
        assert server.recorder.infos[0].request_data == {"hello": 1}
    finally:
        await client.disconnect()


async def test_reconnects_after_server_drops_the_pc(server: RunningServer) -> None:
    meter = AudioMeter()
    client = make_client(audio_track=ToneSource(440.0))
    log = EventLog(client)
    client.add_audio_sink(meter.feed)
    await client.connect(server.url + "/api/offer")
    try:
        first_pc_id = client.pc_id
        await wait_until(lambda: meter.seconds > 0.5)
        await drop_server_pc(server)
        await wait_until(lambda: "reconnected" in log.names(), within=15)
        assert log.args("reconnecting")[0] == (1, True)
        assert client.pc_id != first_pc_id
        await wait_until(lambda: client.pc is not None and client.pc.connectionState == "connected")
        heard = meter.seconds
        await wait_until(lambda: meter.seconds > heard + 1.0)  # audio resumed on the new pc
        assert meter.level_dbfs() > -30
        assert client.state == "ready" and client.reconnect_attempts == 0
        assert client.stats.reconnects == 1
        assert len(server.recorder.infos) == 1  # same bot session
    finally:
        await client.disconnect()


async def test_server_renegotiate_reoffers_on_same_pc(server: RunningServer) -> None:
    client = make_client(audio_track=ToneSource(440.0))
    log = EventLog(client)
    await client.connect(server.url + "/api/offer")
    try:
        pc, pc_id = client.pc, client.pc_id
        server.recorder.connections[0].ask_to_renegotiate()
        await wait_until(lambda: "reconnected" in log.names())
        assert log.args("reconnecting") == [(1, False)]
        assert client.pc is pc and client.pc_id == pc_id
        assert client.stats.offers == 2
    finally:
        await client.disconnect()


async def test_gives_up_after_three_failed_attempts(server: RunningServer, proxy: SignallingProxy) -> None:
    client = make_client(reconnect=ReconnectPolicy(retry_delay_secs=0.5))
    log = EventLog(client)
    await client.connect(proxy.url + "/api/offer")
    await proxy.stop()  # the server is gone: every re-offer fails at the network level
    await drop_server_pc(server)
    await wait_until(lambda: client.state == "error", within=20)
    assert [a[0] for a in log.args("reconnecting")] == [1, 2, 3]
    reason = client.disconnect_reason or ""
    assert "after 3 attempts" in reason
    assert log.args("disconnected") == [(reason,)]
    assert any("after 3 attempts" in a[0] for a in log.args("error"))
    assert log.states()[-2:] == ["disconnecting", "error"]
    assert client.stats.offers == 4


async def test_5xx_is_retried_and_recovers(server: RunningServer, proxy: SignallingProxy) -> None:
    meter = AudioMeter()
    client = make_client(audio_track=ToneSource(440.0), reconnect=ReconnectPolicy(retry_delay_secs=1.0))
    log = EventLog(client)
    client.add_audio_sink(meter.feed)
    await client.connect(proxy.url + "/api/offer")
    try:
        proxy.fail_status = 503
        await drop_server_pc(server)
        await wait_until(lambda: len(proxy.offers()) == 2, within=10)
        proxy.fail_status = None  # the server is back for the next attempt (1 s later)
        await wait_until(lambda: "reconnected" in log.names(), within=10)
        assert [status for _, _, status in proxy.offers()] == [200, 503, 200]
        assert [a[0] for a in log.args("reconnecting")] == [1, 2]
        heard = meter.seconds
        await wait_until(lambda: meter.seconds > heard + 0.5)
        assert client.state == "ready"
    finally:
        await client.disconnect()


async def test_http_404_fails_at_once(server: RunningServer) -> None:
    client = make_client()
    log = EventLog(client)
    with pytest.raises(ClientError, match="404"):
        await client.connect(server.url + "/sessions/bogus/api/offer")
    assert client.stats.offers == 1
    assert client.state == "error" and "reconnecting" not in log.names()


async def test_4xx_on_reconnect_stops_retries(server: RunningServer, proxy: SignallingProxy) -> None:
    client = make_client(reconnect=ReconnectPolicy(retry_delay_secs=0.2))
    log = EventLog(client)
    await client.start_bot_and_connect(proxy.url + "/start")
    await server.recorder.connections[0].close()  # session over: its offer URL now answers 404
    await wait_until(lambda: client.state == "error", within=15)
    assert [a[0] for a in log.args("reconnecting")] == [1]
    assert "404" in (client.disconnect_reason or "")
    assert [status for _, _, status in proxy.offers()] == [200, 404]


async def test_bot_ready_timeout(start_server: StartServer) -> None:
    async def silent_bot(connection: Any, info: Any) -> None:
        await asyncio.sleep(30)  # never calls connect(): no bot-ready

    server = await start_server(silent_bot)
    client = make_client(ready_timeout_secs=1.0)
    with pytest.raises(ClientError, match="no bot-ready"):
        await client.connect(server.url + "/api/offer")
    assert client.state == "error"


async def test_peer_left_disconnects(server: RunningServer) -> None:
    client = make_client()
    log = EventLog(client)
    await client.connect(server.url + "/api/offer")
    await server.recorder.connections[0].disconnect()
    await wait_until(lambda: client.state == "disconnected")
    assert "bot-disconnected" in log.names() and "reconnecting" not in log.names()


async def test_unreachable_server_fails_cleanly() -> None:
    client = make_client()
    log = EventLog(client)
    with pytest.raises(ClientError, match="Cannot connect"):
        await client.connect("http://127.0.0.1:9/api/offer")
    assert client.state == "error"
    assert (client.disconnect_reason or "").startswith("could not connect")
    assert log.args("error") and "reconnecting" not in log.names()


def test_echo_pipeline_bot_is_available() -> None:
    assert echo_pipeline_bot() is not None


async def test_candidates_are_patched_after_the_answer_with_current_pc_id(
    server: RunningServer, proxy: SignallingProxy
) -> None:
    client = make_client(audio_track=ToneSource(440.0))
    await client.connect(proxy.url + "/api/offer")
    try:
        first = client.pc_id
        await wait_until(lambda: any(m == "PATCH" for m, _ in proxy.bodies))
        methods = [m for m, _ in proxy.bodies]
        assert methods[0] == "POST" and "PATCH" in methods
        offer = proxy.bodies[0][1]
        assert offer["pc_id"] is None and offer["restart_pc"] is False and offer["type"] == "offer"
        assert "a=candidate" not in offer["sdp"]
        patch = next(b for m, b in proxy.bodies if m == "PATCH")
        assert patch["pc_id"] == first
        assert patch["candidates"] and all("127.0.0.1" in c["candidate"] for c in patch["candidates"])
        assert {"candidate", "sdp_mid", "sdp_mline_index"} == set(patch["candidates"][0])
        await drop_server_pc(server)
        await wait_until(lambda: client.pc_id != first and client.state == "ready", within=15)
        restart = [b for m, b in proxy.bodies if m == "POST"][1]
        assert restart["pc_id"] == first and restart["restart_pc"] is True
        await wait_until(lambda: any(m == "PATCH" and b["pc_id"] == client.pc_id for m, b in proxy.bodies))
    finally:
        await client.disconnect()


async def test_video_and_screen_transceivers(start_server: StartServer, tmp_path: Path) -> None:
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError

    from runner.client.media import TestPatternSource, VideoRecorder

    class VideoEcho(MediaStreamTrack):
        kind = "video"

        def __init__(self, connection: Any) -> None:
            super().__init__()
            self.connection = connection

        async def recv(self) -> Any:
            while self.readyState == "live":
                source = self.connection.video_input_track()
                if source is not None:
                    return await source.recv()
                await asyncio.sleep(0.02)
            raise MediaStreamError

    statuses: list[tuple[int, bool]] = []

    async def video_bot(connection: Any, info: Any) -> None:
        connection.add_event_handler("track-status", lambda _c, i, e: statuses.append((i, e)))
        connection.replace_video_track(VideoEcho(connection))
        await connection.connect()
        await asyncio.sleep(30)

    server = await start_server(video_bot)
    recorder = VideoRecorder(tmp_path / "bot.webm")
    client = make_client(video_track=TestPatternSource(160, 120, fps=15), enable_screen=True, video_codec="VP8")
    log = EventLog(client)
    client.add_video_sink(recorder.write)
    await client.connect(server.url + "/api/offer")
    try:
        assert client.pc is not None and len(client.pc.getTransceivers()) == 3
        assert client.last_answer_sdp is not None and client.last_answer_sdp.count("m=video") == 2
        await wait_until(lambda: recorder.frames >= 10, within=15)
        assert ("track-started") in log.names()
        assert any(a[1] == "video" for a in log.args("track-started"))
        assert statuses[:3] == [(0, False), (1, True), (2, False)]
    finally:
        await client.disconnect()
        recorder.close()
    assert any(a[1] == "video" for a in log.args("track-stopped"))
    import av

    with av.open(str(tmp_path / "bot.webm")) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (160, 120)


async def test_ice_disconnected_for_the_grace_period_restarts() -> None:
    client = make_client(reconnect=ReconnectPolicy(disconnected_grace_secs=0.2))
    calls: list[bool] = []

    async def fake_attempt(recreate: bool) -> None:
        calls.append(recreate)

    class FakePc:
        iceConnectionState = "disconnected"

    pc = FakePc()
    client.pc = pc  # type: ignore[assignment]
    client.attempt_reconnection = fake_attempt  # type: ignore[method-assign]
    await client._on_ice_state(pc)  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    assert calls == []
    await asyncio.sleep(0.25)
    assert calls == [True]
    pc.iceConnectionState = "completed"  # a blip shorter than the grace period does nothing
    pc.iceConnectionState = "disconnected"
    await client._on_ice_state(pc)  # type: ignore[arg-type]
    pc.iceConnectionState = "completed"
    await client._on_ice_state(pc)  # type: ignore[arg-type]
    await asyncio.sleep(0.35)
    assert calls == [True]


async def test_context_manager_and_fresh_session_on_reconnect_call(server: RunningServer) -> None:
    async with make_client() as client:
        await client.connect(server.url + "/api/offer")
        first = client.pc_id
        await client.disconnect()
        await client.connect(server.url + "/api/offer")  # a brand-new session, not a renegotiation
        assert client.pc_id != first and client.stats.offers == 1
        await wait_until(lambda: len(server.recorder.infos) == 2)
    assert client.state == "disconnected"
