"""SmallWebRTCTransport end to end: a real SmallWebRTCConnection served to a raw aiortc client.

Everything stays on loopback: explicit empty ICE server lists and 127.0.0.1 host candidates
on both sides; the offer/answer is exchanged in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import pytest
import structlog.testing
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from runner.frames import (
    Frame,
    FrameDirection,
    InputAudioRawFrame,
    InputImageRawFrame,
    InputTransportMessageFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    OutputTransportMessageFrame,
)
from runner.params import TransportParams
from runner.pipeline import Pipeline, PipelineParams, PipelineTask
from runner.processors.base import FrameProcessor
from runner.webrtc.connection import SmallWebRTCConnection
from runner.webrtc.ice import restrict_host_addresses
from runner.webrtc.input import SmallWebRTCInputTransport, receiver_of, tune_audio_receiver
from runner.webrtc.transport import SmallWebRTCTransport

pytestmark = pytest.mark.timeout(40)

LOUD = 1000.0


class Mic(MediaStreamTrack):
    """Real-time 20 ms mono frames: silence, or a tone while ``on``; notes the frame the tone starts at.

    ``frames`` (how many it produced so far) is the media clock latency is measured in.
    """

    kind = "audio"

    def __init__(self, rate: int = 48000, freq: float = 440.0) -> None:
        super().__init__()
        self.rate, self.freq, self.on = rate, freq, False
        self.tone_from: int | None = None
        self._n = 0
        self._t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        size = self.rate // 50
        if self._t0 is None:
            self._t0 = time.monotonic()
        delay = self._t0 + self._n * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(size) + self._n * size) / self.rate
        wave = np.sin(2 * np.pi * self.freq * t) * 0.3 * 32767 if self.on else np.zeros(size)
        if self.on and self.tone_from is None:
            self.tone_from = self._n
        frame = av.AudioFrame.from_ndarray(wave.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = self.rate, self._n * size, fractions.Fraction(1, self.rate)
        self._n += 1
        return frame

    @property
    def frames(self) -> int:
        return self._n


class Camera(MediaStreamTrack):
    """A 320x240 solid red picture at 30 fps; ``frames`` counts them."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._n = 0
        self.frames = 0
        img = np.zeros((240, 320, 3), np.uint8)
        img[..., 0] = 255
        self._image = img

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(1 / 30)
        frame = av.VideoFrame.from_ndarray(self._image, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = self._n * 3000, fractions.Fraction(1, 90000)
        self._n += 1
        self.frames = self._n
        return frame


class Echo(FrameProcessor):
    """Turns input audio into output audio and records what passes."""

    def __init__(self) -> None:
        super().__init__(name="echo")
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        self.frames.append(frame)
        if isinstance(frame, InputAudioRawFrame):
            frame = OutputAudioRawFrame(
                audio=frame.audio, sample_rate=frame.sample_rate, num_channels=frame.num_channels
            )
        await self.push_frame(frame, direction)

    def of(self, kind: type[Frame]) -> list[Any]:
        return [f for f in self.frames if isinstance(f, kind)]


@dataclass
class Session:
    conn: SmallWebRTCConnection
    transport: SmallWebRTCTransport
    task: PipelineTask
    echo: Echo
    client: RTCPeerConnection
    mic: Mic
    channel: Any
    camera: Camera | None = None
    # (mic frames produced when it was heard, rms, left pcm)
    heard: list[tuple[int, float, np.ndarray]] = field(default_factory=list)
    video: list[av.VideoFrame] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    events: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    channel_open: asyncio.Event = field(default_factory=asyncio.Event)

    def loud_since(self, index: int) -> list[bool]:
        return [rms > LOUD for _, rms, _ in self.heard[index:]]

    async def until(self, check: Callable[[], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not check():
            assert time.monotonic() < deadline, "condition not met in time"
            await asyncio.sleep(0.01)


def offer_only(sdp: str, kind: str, codec: str) -> str:
    """Keep just ``codec`` in the ``kind`` m-line (like the JS client's codec filter)."""
    out, keep, in_kind = [], set(), False
    lines = sdp.split("\r\n")
    for line in lines:
        if line.startswith("m="):
            in_kind = line.startswith(f"m={kind} ")
        if in_kind and line.startswith("a=rtpmap:") and line.split(" ", 1)[1].startswith(codec):
            keep.add(line[9:].split(" ")[0])
    for line in lines:
        if line.startswith("m="):
            in_kind = line.startswith(f"m={kind} ")
            if in_kind:
                parts = line.split()
                line = " ".join(parts[:3] + [p for p in parts[3:] if p in keep])
        elif in_kind and line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            if line.split(":", 1)[1].split()[0] not in keep:
                continue
        out.append(line)
    return "\r\n".join(out)


@contextlib.asynccontextmanager
async def session(
    params: TransportParams,
    *,
    codec: str | None = None,
    camera: bool = False,
    client_low_latency: bool = False,
) -> AsyncIterator[Session]:
    conn = SmallWebRTCConnection(ice_servers=[], host_addresses=["127.0.0.1"])
    transport = SmallWebRTCTransport(conn, params)
    echo = Echo()
    task = PipelineTask(
        Pipeline([transport.input(), echo, transport.output()]),
        params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=24000),
    )
    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    mic = Mic()
    client.addTransceiver("audio", direction="sendrecv").sender.replaceTrack(mic)
    cam = Camera() if camera else None
    client.addTransceiver("video", direction="sendrecv").sender.replaceTrack(cam)
    channel = client.createDataChannel("chat", ordered=True)
    s = Session(conn, transport, task, echo, client, mic, channel, camera=cam)
    readers: list[asyncio.Task[None]] = []

    for name in ("on_client_connected", "on_client_disconnected", "on_client_closed", "on_app_message"):

        def record(_t: Any, *args: Any, _name: str = name) -> None:
            s.events.append((_name, args))
            if _name == "on_client_connected":
                s.connected.set()

        transport.add_event_handler(name, record)

    channel.on("open", s.channel_open.set)
    channel.on("message", lambda data: s.messages.append(json.loads(data)))

    @client.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if client_low_latency and track.kind == "audio":
            receiver = receiver_of(client, track)
            assert receiver is not None and tune_audio_receiver(receiver)

        async def read() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame = await track.recv()
                    if isinstance(frame, av.AudioFrame):
                        left = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
                        level = float(np.sqrt(np.mean(left.astype(np.float64) ** 2)))
                        s.heard.append((mic.frames, level, left))
                    else:
                        s.video.append(frame)

        readers.append(asyncio.get_running_loop().create_task(read()))

    restrict_host_addresses(client, ["127.0.0.1"])
    await client.setLocalDescription(await client.createOffer())
    sdp = client.localDescription.sdp
    if codec:
        sdp = offer_only(sdp, "audio", codec)
    await conn.initialize(sdp=sdp, type="offer")
    answer = conn.get_answer()
    assert answer is not None
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    runner = asyncio.get_running_loop().create_task(task.run())
    try:
        await asyncio.wait_for(s.connected.wait(), 10)
        yield s
    finally:
        await task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 5)
        for reader in readers:
            reader.cancel()
        await client.close()
        mic.stop()


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * rate / len(pcm))


AUDIO = TransportParams(audio_in_enabled=True, audio_out_enabled=True)


async def measure_round_trips(s: Session, bursts: int = 3) -> list[int]:
    """Silence, then a tone burst: mic frames produced from the tone's first frame to its first echo.

    Latency in 20 ms frames of the mic's own media clock, not in wall-clock seconds.
    """
    results = []
    for _ in range(bursts):
        silent_from = s.mic.frames
        await s.until(lambda silent_from=silent_from: s.mic.frames >= silent_from + 20)  # 400 ms of silence
        mark = len(s.heard)
        s.mic.tone_from = None
        s.mic.on = True
        await s.until(lambda mark=mark: any(s.loud_since(mark)), within=5)
        heard_at = next(n for n, rms, _ in s.heard[mark:] if rms > LOUD)
        assert s.mic.tone_from is not None
        results.append(heard_at - s.mic.tone_from)
        tone_from = s.mic.tone_from
        await s.until(lambda tone_from=tone_from: s.mic.frames >= tone_from + 15)
        s.mic.on = False
    return results


async def test_echo_tone_comes_back_in_exact_20ms_16k_chunks() -> None:
    async with session(AUDIO) as s:
        s.mic.on = True
        await s.until(lambda: sum(s.loud_since(0)) >= 50)
        inputs = s.echo.of(InputAudioRawFrame)
        assert inputs and all(f.sample_rate == 16000 and f.num_channels == 1 and len(f.audio) == 640 for f in inputs)
        loud = [pcm for _, rms, pcm in s.heard if rms > LOUD][-50:]
        pcm = np.concatenate(loud)
        level = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
        assert level > 3000  # 0.3 full scale sine ~ 6950 rms
        assert abs(dominant_hz(pcm, 48000) - 440) < 10
        levels = [rms for _, rms, _ in s.heard[-50:]]
        assert min(levels) > LOUD  # steady, no dropouts once flowing


async def packets_received(receiver: Any) -> int:
    stats = await receiver.getStats()
    return sum(getattr(v, "packetsReceived", 0) for v in stats.values() if getattr(v, "type", "") == "inbound-rtp")


@pytest.mark.parametrize("tuned", [True, False], ids=["low-latency", "aiortc-default"])
async def test_low_latency_receiver_holds_back_no_packet(tuned: bool) -> None:
    """aiortc's audio jitter buffer keeps ~4 packets back (80 ms); ours hands on every packet at once.

    Counted, not timed: after the mic stops, every packet the server received has become a
    20 ms chunk with the low-latency receiver; with aiortc's the last few stay in its buffer.
    (Round-trip latency itself is compared in bench/webrtc_echo.py.)
    """
    SmallWebRTCInputTransport.low_latency_audio = tuned
    try:
        async with session(AUDIO) as s:
            s.mic.on = True
            await s.until(lambda: sum(s.loud_since(0)) >= 25)
            s.client.getTransceivers()[0].sender.replaceTrack(None)  # the mic stops sending
            pc = s.conn.pc
            assert pc is not None
            track = s.transport.output().audio_track
            assert track is not None
            settled = track.frames_sent
            await s.until(lambda: track.frames_sent >= settled + 25)  # 500 ms of the bot's media clock
            held = await packets_received(pc.getTransceivers()[0].receiver) - s.transport.input().audio_frames
            print(f"packets received but not yet delivered, {'ours' if tuned else 'aiortc'}: {held}")
            if tuned:
                assert held <= 1
            else:
                assert held >= 3
    finally:
        SmallWebRTCInputTransport.low_latency_audio = True


async def test_pcmu_only_still_gives_16k_mono() -> None:
    async with session(AUDIO, codec="PCMU/8000") as s:
        assert "PCMU" in s.conn.get_answer()["sdp"]  # type: ignore[index]
        assert "opus" not in s.conn.get_answer()["sdp"].split("m=video")[0]  # type: ignore[index]
        s.mic.on = True
        await s.until(lambda: sum(s.loud_since(0)) >= 25)
        inputs = s.echo.of(InputAudioRawFrame)
        assert all(f.sample_rate == 16000 and f.num_channels == 1 and len(f.audio) == 640 for f in inputs)
        loud = np.concatenate([pcm for _, rms, pcm in s.heard if rms > LOUD][-25:])
        assert abs(dominant_hz(loud, 8000 if len(s.heard[-1][2]) == 160 else 48000) - 440) < 15


async def test_interruption_clears_queued_output() -> None:
    params = TransportParams(audio_out_enabled=True)
    async with session(params) as s:
        await s.until(lambda: len(s.heard) > 5)
        rate = 24000
        t = np.arange(rate * 2) / rate
        tone = (np.sin(2 * np.pi * 440 * t) * 0.3 * 32767).astype(np.int16).tobytes()
        writer = asyncio.get_running_loop().create_task(
            s.transport.send_audio(OutputAudioRawFrame(audio=tone, sample_rate=rate))
        )
        mark = len(s.heard)
        await s.until(lambda: sum(s.loud_since(mark)) >= 10)
        cut = len(s.heard)
        await s.transport.input().push_frame(InterruptionFrame())
        await asyncio.wait_for(writer, 1)  # the blocked write was released, not left hanging
        await s.until(lambda: len(s.heard) >= cut + 40)
        after = s.loud_since(cut)[:40]
        still_loud = sum(after)
        print(f"frames still loud after the interruption: {still_loud} (of 40 received)")
        assert still_loud <= 10  # only what was already in flight (40 ms buffer + network + client jitter buffer)
        assert not any(after[still_loud + 2 :]), "tone resumed after the interruption"
        assert sum(s.loud_since(mark)) < 75  # far from the 2 s (100 frames) queued


async def test_app_messages_both_ways_and_end_disconnects() -> None:
    async with session(AUDIO) as s:
        await asyncio.wait_for(s.channel_open.wait(), 5)
        s.channel.send(json.dumps({"hello": "bot"}))
        await s.until(lambda: bool(s.echo.of(InputTransportMessageFrame)))
        assert s.echo.of(InputTransportMessageFrame)[0].message == {"hello": "bot"}
        assert ("on_app_message", ({"hello": "bot"}, s.conn.pc_id)) in s.events
        ready_msg = {"label": "rtvi-ai", "type": "client-ready", "id": "r1", "data": {"version": "2.1.0"}}
        s.channel.send(json.dumps(ready_msg))
        await s.until(lambda: any(isinstance(m, dict) and m.get("type") == "bot-ready" for m in s.messages))
        ready = next(m for m in s.messages if isinstance(m, dict) and m.get("type") == "bot-ready")
        caps = ready["data"]["capabilities"]
        assert (caps["audio_in"], caps["audio_out"], caps["video_in"], caps["video_out"]) == (True, True, False, False)
        await s.task.queue_frame(OutputTransportMessageFrame(message={"hello": "client"}))
        await s.until(lambda: {"hello": "client"} in s.messages)
        await s.task.end()
        await s.until(lambda: any(m.get("type") == "signalling" for m in s.messages if isinstance(m, dict)))
        assert {"type": "signalling", "message": {"type": "peerLeft"}} in s.messages
        await s.until(lambda: any(name == "on_client_closed" for name, _ in s.events))


async def test_video_in_is_converted_and_rate_limited() -> None:
    params = TransportParams(video_in_enabled=True, video_in_framerate=10)
    async with session(params, camera=True) as s:
        await s.until(lambda: len(s.echo.of(InputImageRawFrame)) >= 5)
        source = s.camera
        assert source is not None
        sent, converted = source.frames, len(s.echo.of(InputImageRawFrame))
        await s.until(lambda: source.frames >= sent + 60)  # two seconds of 30 fps camera
        more = len(s.echo.of(InputImageRawFrame)) - converted
        frame = s.echo.of(InputImageRawFrame)[-1]
        assert frame.size == (320, 240) and frame.format == "RGB" and len(frame.image) == 320 * 240 * 3
        assert frame.source == "camera" and frame.user_id == s.conn.pc_id
        r, g, b = np.frombuffer(frame.image, np.uint8).reshape(240, 320, 3)[120, 160]
        assert r > 180 and g < 80 and b < 80
        assert 5 <= more <= 30  # a 10 fps limit on a 30 fps camera: about a third of its frames
        assert s.transport.input().video_dropped > 0  # the rest were replaced before conversion


async def test_video_out_has_configured_size() -> None:
    params = TransportParams(video_out_enabled=True, video_out_width=160, video_out_height=120, video_out_framerate=15)
    async with session(params) as s:
        image = np.zeros((48, 64, 3), np.uint8)
        image[..., 1] = 255
        await s.transport.send_image(OutputImageRawFrame(image=image.tobytes(), size=(64, 48), format="RGB"))
        await s.until(lambda: len(s.video) >= 5)
        frame = s.video[-1]
        assert (frame.width, frame.height) == (160, 120)
        r, g, b = frame.to_ndarray(format="rgb24")[60, 80]
        assert g > 180 and r < 80


async def test_video_yuv420p_in_and_out_without_rgb() -> None:
    params = TransportParams(
        video_in_enabled=True,
        video_in_format="yuv420p",
        video_out_enabled=True,
        video_out_width=320,
        video_out_height=240,
    )
    async with session(params, camera=True) as s:
        await s.until(lambda: len(s.echo.of(InputImageRawFrame)) >= 2)
        frame = s.echo.of(InputImageRawFrame)[-1]
        assert frame.size == (320, 240) and frame.format == "yuv420p" and len(frame.image) == 320 * 240 * 3 // 2
        luma = np.frombuffer(frame.image, np.uint8)[: 320 * 240].reshape(240, 320)
        assert 60 < luma[120, 160] < 100  # the camera's red (Y 82)
        green = np.full((240, 320, 3), (0, 255, 0), np.uint8)
        yuv = av.VideoFrame.from_ndarray(green, format="rgb24").reformat(format="yuv420p").to_ndarray()
        await s.transport.send_image(OutputImageRawFrame(image=yuv.tobytes(), size=(320, 240), format="yuv420p"))
        await s.until(lambda: any(f.to_ndarray(format="rgb24")[120, 160, 1] > 180 for f in s.video[-3:]))


async def test_restart_pc_keeps_echo_working() -> None:
    async with session(AUDIO) as s:
        s.mic.on = True
        await s.until(lambda: sum(s.loud_since(0)) >= 10)
        old_id = s.conn.pc_id
        client2 = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        mic2 = Mic(freq=660)
        mic2.on = True
        client2.addTransceiver("audio", direction="sendrecv").sender.replaceTrack(mic2)
        client2.addTransceiver("video", direction="sendrecv")
        heard2: list[float] = []

        @client2.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            async def read() -> None:
                with contextlib.suppress(MediaStreamError):
                    while True:
                        frame = await track.recv()
                        if isinstance(frame, av.AudioFrame):
                            heard2.append(float(np.sqrt(np.mean(frame.to_ndarray().astype(np.float64) ** 2))))

            asyncio.get_running_loop().create_task(read())

        try:
            restrict_host_addresses(client2, ["127.0.0.1"])
            await client2.setLocalDescription(await client2.createOffer())
            await s.conn.renegotiate(sdp=client2.localDescription.sdp, type="offer", restart_pc=True)
            answer = s.conn.get_answer()
            assert answer is not None and answer["pc_id"] != old_id
            await client2.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
            await s.client.close()
            await s.until(lambda: sum(1 for lv in heard2 if lv > LOUD) >= 25, within=10)
            assert [name for name, _ in s.events].count("on_client_connected") == 1
        finally:
            await client2.close()
            mic2.stop()


async def test_vad_pushes_speaking_frames_and_interruption() -> None:
    from runner.audio.energy_vad import EnergyVAD
    from runner.audio.vad import VADParams
    from runner.frames import UserStartedSpeakingFrame, UserStoppedSpeakingFrame

    vad = EnergyVAD(VADParams(start_secs=0.1, stop_secs=0.2, min_volume=0.1))
    params = TransportParams(audio_in_enabled=True, audio_in_passthrough=False, vad_analyzer=vad)
    async with session(params) as s:
        await asyncio.sleep(0.5)
        s.mic.on = True
        await s.until(lambda: bool(s.echo.of(UserStartedSpeakingFrame)), within=5)
        started = s.echo.frames.index(s.echo.of(UserStartedSpeakingFrame)[0])
        assert isinstance(s.echo.frames[started + 1], InterruptionFrame)
        s.mic.on = False
        await s.until(lambda: bool(s.echo.of(UserStoppedSpeakingFrame)), within=5)
        assert not s.echo.of(InputAudioRawFrame)  # passthrough off: only the VAD saw the audio


async def test_loop_stall_does_not_ratchet_latency() -> None:
    """A 200 ms event-loop stall while audio flows leaves no standing queue behind (frame counts)."""
    async with session(AUDIO, client_low_latency=True) as s:
        before = await measure_round_trips(s, bursts=3)
        s.mic.on = True
        start = s.mic.frames
        await s.until(lambda: s.mic.frames >= start + 10)
        time.sleep(0.2)  # noqa: ASYNC251 - the event loop is busy for 200 ms while audio flows
        await s.until(lambda: s.mic.frames >= start + 35)
        s.mic.on = False
        quiet = s.mic.frames
        await s.until(lambda: s.mic.frames >= quiet + 50)  # let the output track shed a standing queue
        after = await measure_round_trips(s, bursts=3)
        inp, track = s.transport.input(), s.transport.output().audio_track
        assert track is not None
        print(f"echo round trip in 20 ms frames before a 200 ms stall {before}, after {after}")
        print(f"input chunks dropped {inp.audio_dropped}; output frames shed {track.frames_shed}")
        assert statistics.median(after) <= statistics.median(before) + 2


async def test_renegotiating_opus_to_pcmu_switches_the_echo_codec() -> None:
    """Same pc, new offer with only PCMU: the bot's audio is then PCMU (8 kHz at the client)."""
    async with session(AUDIO) as s:
        s.mic.on = True
        await s.until(lambda: sum(s.loud_since(0)) >= 25)
        assert all(len(pcm) == 960 for _, _, pcm in s.heard[-25:])  # Opus: 48 kHz frames
        await s.client.setLocalDescription(await s.client.createOffer())
        await s.conn.renegotiate(sdp=offer_only(s.client.localDescription.sdp, "audio", "PCMU/8000"), type="offer")
        answer = s.conn.get_answer()
        assert answer is not None
        audio_section = answer["sdp"].split("m=audio")[1].split("m=")[0]
        assert "PCMU/8000" in audio_section and "opus" not in audio_section
        await s.client.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        mark = len(s.heard)

        def pcmu_echo() -> list[np.ndarray]:
            return [pcm for _, rms, pcm in s.heard[mark:] if rms > LOUD and len(pcm) == 160]

        await s.until(lambda: len(pcmu_echo()) >= 50)
        assert s.conn.audio_send_codec() == "audio/PCMU"
        assert abs(dominant_hz(np.concatenate(pcmu_echo()[-25:]), 8000) - 440) < 15
        assert not any(len(pcm) == 960 for _, _, pcm in s.heard[-25:])  # no Opus frame any more


class BrokenVAD:
    """A VAD analyzer whose inference fails after a few chunks (a model that crashes)."""

    def __init__(self) -> None:
        self.calls = 0

    def analyze_audio(self, pcm: bytes) -> Any:
        self.calls += 1
        if self.calls > 10:
            raise RuntimeError("vad model crashed")
        return None


def broken_conversion(*_: Any) -> Any:
    raise ValueError("cannot convert this picture")


@pytest.mark.parametrize("part", ["vad", "video"])
async def test_an_input_failure_ends_the_session_with_a_fatal_error(part: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """VAD or video conversion raising: logged with the session, a fatal ErrorFrame, the session ends."""
    if part == "vad":
        params = TransportParams(audio_in_enabled=True, vad_analyzer=BrokenVAD())
        reader, message = "audio-consumer", "RuntimeError: vad model crashed"
    else:
        monkeypatch.setattr("runner.webrtc.input.frame_to_image", broken_conversion)
        params = TransportParams(video_in_enabled=True)
        reader, message = "camera-consumer", "ValueError: cannot convert this picture"
    with structlog.testing.capture_logs() as logs:
        async with session(params, camera=part == "video") as s:
            await asyncio.wait_for(s.channel_open.wait(), 10)
            s.mic.on = True
            pc_id = s.conn.pc_id
            await s.until(lambda: s.task.has_finished, within=15)
            assert s.task.error is not None and s.task.error.fatal
            assert s.task.error.error == f"{reader} input failed: {message}"
            await s.until(lambda: any(name == "on_client_closed" for name, _ in s.events))
            assert s.conn.closed
            errors = [m for m in s.messages if isinstance(m, dict) and m.get("type") == "error"]
            assert [e["data"] for e in errors] == [{"error": f"{reader} input failed: {message}", "fatal": True}]
    failures = [e for e in logs if e["event"] == "input_reader_failed"]
    assert len(failures) == 1
    assert failures[0]["reader"] == reader and failures[0]["pc_id"] == pc_id and failures[0]["error"] == message
