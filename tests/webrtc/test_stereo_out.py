"""``audio_out_channels: 2``: stereo bot audio reaches a real aiortc client with each side intact."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.frames import OutputAudioRawFrame
from runner.params import TransportParams
from runner.pipeline import Pipeline, PipelineParams, PipelineTask
from runner.webrtc.connection import SmallWebRTCConnection
from runner.webrtc.ice import restrict_host_addresses
from runner.webrtc.tracks import AudioOutputTrack
from runner.webrtc.transport import SmallWebRTCTransport
from tests.webrtc.test_transport import dominant_hz, offer_only

pytestmark = pytest.mark.timeout(60)

RATE = 24000
LEFT_HZ, RIGHT_HZ = 440.0, 1250.0


def stereo_tone(seconds: float) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    left = np.sin(2 * np.pi * LEFT_HZ * t) * 0.3 * 32767
    right = np.sin(2 * np.pi * RIGHT_HZ * t) * 0.3 * 32767
    return np.stack([left, right], axis=1).astype(np.int16).tobytes()


@contextlib.asynccontextmanager
async def stereo_bot(codec: str | None = None) -> AsyncIterator[tuple[SmallWebRTCTransport, list[av.AudioFrame]]]:
    """A served transport with stereo output and a loopback client keeping every audio frame it decodes."""
    conn = SmallWebRTCConnection(ice_servers=[], host_addresses=["127.0.0.1"])
    transport = SmallWebRTCTransport(conn, TransportParams(audio_out_enabled=True, audio_out_channels=2))
    task = PipelineTask(
        Pipeline([transport.input(), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=RATE),
    )
    connected = asyncio.Event()
    transport.add_event_handler("on_client_connected", lambda *_: connected.set())
    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    client.addTransceiver("audio", direction="recvonly")
    frames: list[av.AudioFrame] = []
    readers: list[asyncio.Task[None]] = []

    @client.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def read() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame = await track.recv()
                    assert isinstance(frame, av.AudioFrame)
                    frames.append(frame)

        readers.append(asyncio.get_running_loop().create_task(read()))

    restrict_host_addresses(client, ["127.0.0.1"])
    await client.setLocalDescription(await client.createOffer())
    sdp = client.localDescription.sdp
    await conn.initialize(sdp=offer_only(sdp, "audio", codec) if codec else sdp, type="offer")
    answer = conn.get_answer()
    assert answer is not None
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    runner = asyncio.get_running_loop().create_task(task.run())
    try:
        await asyncio.wait_for(connected.wait(), 15)
        yield transport, frames
    finally:
        await task.cancel()
        await asyncio.wait_for(runner, 10)
        for reader in readers:
            reader.cancel()
        await client.close()


async def heard(transport: SmallWebRTCTransport, frames: list[av.AudioFrame]) -> tuple[np.ndarray, int]:
    """Send 1.5 s of stereo tone; the client's loud frames as (samples, channels)."""
    await transport.send_audio(OutputAudioRawFrame(audio=stereo_tone(1.5), sample_rate=RATE, num_channels=2))
    for _ in range(300):  # bounded wait for the tone to arrive
        loud = [f for f in frames if np.abs(f.to_ndarray()).max() > 3000]
        if len(loud) >= 40:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"only {len(frames)} frames heard, few loud")
    channels = len(loud[0].layout.channels)
    return np.concatenate([f.to_ndarray().reshape(-1, channels) for f in loud[5:40]]), loud[0].sample_rate


async def test_stereo_opus_keeps_left_and_right_apart() -> None:
    async with stereo_bot() as (transport, frames):
        pcm, rate = await heard(transport, frames)
    assert pcm.shape[1] == 2
    assert abs(dominant_hz(pcm[:, 0], rate) - LEFT_HZ) < 15
    assert abs(dominant_hz(pcm[:, 1], rate) - RIGHT_HZ) < 15


async def test_stereo_over_a_mono_codec_is_downmixed_with_both_sides_heard() -> None:
    async with stereo_bot("PCMU/8000") as (transport, frames):
        pcm, rate = await heard(transport, frames)
    mixed = pcm.astype(np.float64).mean(axis=1)
    spectrum = np.abs(np.fft.rfft(mixed * np.hanning(len(mixed))))
    hz = np.fft.rfftfreq(len(mixed), 1 / rate)
    peaks = sorted(float(hz[i]) for i in np.argsort(spectrum)[-40:])
    assert any(abs(p - LEFT_HZ) < 15 for p in peaks) and any(abs(p - RIGHT_HZ) < 15 for p in peaks)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 4000), min_size=1, max_size=8))
def test_the_stereo_track_hands_out_interleaved_audio_unchanged(sizes: list[int]) -> None:
    """Whatever the write sizes, stereo frames carry the written samples in order, never split L/R."""

    async def scenario() -> None:
        now = [0.0]

        async def sleep(secs: float) -> None:
            now[0] += secs

        track = AudioOutputTrack(
            48000, channels=2, max_buffer_ms=10_000, auto_silence=False, clock=lambda: now[0], sleep=sleep
        )
        written = np.arange(sum(sizes) * 2, dtype=np.int16) % 20000
        data = written.tobytes()
        start = 0
        for size in sizes:
            assert await track.write(data[start : start + size * 4])
            start += size * 4
        out: list[Any] = []
        while sum(len(f) for f in out) < len(written):
            frame = await track.recv()
            assert frame.layout.name == "stereo" and frame.samples == 960
            out.append(frame.to_ndarray().reshape(-1))
        got = np.concatenate(out)
        assert np.array_equal(got[: len(written)], written) and not got[len(written) :].any()

    asyncio.run(scenario())
