"""Outbound tracks: pacing, backpressure, interruption, stalls, and real loopback peers."""

from __future__ import annotations

import asyncio
import contextlib
import time

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from runner.webrtc.ice import restrict_host_addresses
from runner.webrtc.tracks import VIDEO_CLOCK_RATE, AudioOutputTrack, VideoOutputTrack

pytestmark = pytest.mark.timeout(30)


def tone_pcm(rate: int, secs: float, freq: float = 440.0, amp: float = 0.3) -> bytes:
    t = np.arange(int(rate * secs)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp * 32767).astype(np.int16).tobytes()


def rms(frame: av.AudioFrame) -> float:
    data = frame.to_ndarray().astype(np.float64)
    return float(np.sqrt(np.mean(data**2)))


async def pull(track: MediaStreamTrack, count: int) -> list[av.AudioFrame]:
    return [await track.recv() for _ in range(count)]  # type: ignore[misc]


async def test_pacing_is_real_time_with_continuous_pts() -> None:
    track = AudioOutputTrack(24000)
    start = time.monotonic()
    frames = await pull(track, 50)
    elapsed = time.monotonic() - start
    assert 0.95 < elapsed < 1.1
    assert [f.pts for f in frames] == [i * 480 for i in range(50)]
    assert all(f.samples == 480 and f.sample_rate == 24000 and f.layout.name == "mono" for f in frames)
    assert max(rms(f) for f in frames) == 0  # idle: silence


async def test_write_backpressure_keeps_at_most_40ms() -> None:
    track = AudioOutputTrack(16000)
    levels: list[int] = []

    async def consume() -> None:
        for _ in range(30):
            await track.recv()
            levels.append(track.buffered_bytes)

    consumer = asyncio.get_running_loop().create_task(consume())
    start = time.monotonic()
    assert await track.write(tone_pcm(16000, 0.3))
    took = time.monotonic() - start
    await consumer
    assert max(levels) <= 16000 * 0.04 * 2
    assert 0.2 < took < 0.4  # the writer was held back to real time


async def test_clear_aborts_pending_write_and_silences() -> None:
    track = AudioOutputTrack(16000)
    frames: list[av.AudioFrame] = []

    async def consume() -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frames.append(await track.recv())

    consumer = asyncio.get_running_loop().create_task(consume())
    writer = asyncio.get_running_loop().create_task(track.write(tone_pcm(16000, 2.0)))
    await asyncio.sleep(0.3)
    loud_before = sum(1 for f in frames if rms(f) > 1000)
    track.clear()
    assert await asyncio.wait_for(writer, 0.1) is False
    cut = len(frames)
    await asyncio.sleep(0.2)
    track.stop()
    await consumer
    assert loud_before >= 10
    assert all(rms(f) == 0 for f in frames[cut + 1 :])  # at most the frame in flight was loud


async def test_write_without_consumer_drops_instead_of_hanging() -> None:
    track = AudioOutputTrack(16000, consumer_timeout=0.2)
    start = time.monotonic()
    assert await track.write(tone_pcm(16000, 0.5)) is False
    assert time.monotonic() - start < 0.5
    start = time.monotonic()
    assert await track.write(tone_pcm(16000, 0.5)) is False  # still nobody: immediate
    assert time.monotonic() - start < 0.05
    track.stop()
    assert await track.write(tone_pcm(16000, 0.1)) is False


async def test_stall_catches_up_without_growing_latency() -> None:
    track = AudioOutputTrack(16000)
    await pull(track, 10)
    time.sleep(0.2)  # noqa: ASYNC251 - the event loop is busy for 200 ms
    start = time.monotonic()
    frames = await pull(track, 10)
    assert time.monotonic() - start < 0.05  # the owed frames go out back to back
    assert [f.pts for f in frames] == [(10 + i) * 320 for i in range(10)]
    start = time.monotonic()
    await pull(track, 5)
    assert 0.08 < time.monotonic() - start < 0.13  # and then real time again


async def test_long_stall_skips_instead_of_bursting() -> None:
    track = AudioOutputTrack(16000, max_lag=0.1)
    await pull(track, 5)
    time.sleep(0.3)  # noqa: ASYNC251 - a long stall
    (frame,) = await pull(track, 1)
    assert track.frames_skipped >= 10
    assert frame.pts >= 5 * 320 + 10 * 320  # timestamps follow the clock


async def test_no_auto_silence_waits_for_audio() -> None:
    track = AudioOutputTrack(16000, auto_silence=False)
    waiter = asyncio.get_running_loop().create_task(track.recv())
    await asyncio.sleep(0.1)
    assert not waiter.done()
    await track.write(tone_pcm(16000, 0.02))
    frame = await asyncio.wait_for(waiter, 0.1)
    assert rms(frame) > 1000
    track.stop()


async def test_video_track_repeats_and_scales() -> None:
    track = VideoOutputTrack(160, 120, framerate=20)
    first = await track.recv()
    assert (first.width, first.height) == (160, 120)
    red = np.zeros((60, 80, 3), np.uint8)
    red[..., 0] = 255
    track.add_image(red.tobytes(), (80, 60), "RGB")
    start = time.monotonic()
    frames = [await track.recv() for _ in range(10)]
    assert 0.4 < time.monotonic() - start < 0.6
    assert all((f.width, f.height) == (160, 120) for f in frames)
    assert [f.pts for f in frames] == [round((i + 1) * VIDEO_CLOCK_RATE / 20) for i in range(10)]
    r, g, b = frames[-1].to_ndarray(format="rgb24")[60, 80]
    assert r > 200 and g < 60


async def test_live_video_waits_for_new_frames() -> None:
    track = VideoOutputTrack(64, 48, framerate=30, is_live=True)
    waiter = asyncio.get_running_loop().create_task(track.recv())
    await asyncio.sleep(0.1)
    assert not waiter.done()
    track.add_frame(av.VideoFrame(64, 48, "yuv420p"))
    frame = await asyncio.wait_for(waiter, 0.2)
    assert (frame.width, frame.height) == (64, 48)
    track.stop()


# ---------------------------------------------------------------- real peers on loopback


async def connect_pair(sender: RTCPeerConnection, receiver: RTCPeerConnection) -> None:
    restrict_host_addresses(sender, ["127.0.0.1"])
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    restrict_host_addresses(receiver, ["127.0.0.1"])
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)


async def test_tracks_over_loopback_peers() -> None:
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    audio = AudioOutputTrack(24000)
    video = VideoOutputTrack(320, 240, framerate=15)
    a.addTrack(audio)
    a.addTrack(video)
    received: dict[str, list[av.Frame]] = {"audio": [], "video": []}
    readers: list[asyncio.Task[None]] = []

    @b.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def read() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    received[track.kind].append(await track.recv())  # type: ignore[arg-type]

        readers.append(asyncio.get_running_loop().create_task(read()))

    try:
        await connect_pair(a, b)
        for _ in range(100):
            if received["audio"]:
                break
            await asyncio.sleep(0.05)
        await audio.write(tone_pcm(24000, 1.0))
        await asyncio.sleep(0.3)
        audio_frames = list(received["audio"])
        pcm = np.concatenate([f.to_ndarray()[0, ::2] for f in audio_frames]).astype(np.float64)  # left, 48 kHz
        loud = pcm[np.abs(pcm) > 0]
        assert len(loud) > 48000 * 0.8
        spectrum = np.abs(np.fft.rfft(loud[:32768]))
        assert abs(np.argmax(spectrum) * 48000 / 32768 - 440) < 10
        assert received["video"], "no video frames"
        assert (received["video"][-1].width, received["video"][-1].height) == (320, 240)
    finally:
        for task in readers:
            task.cancel()
        await a.close()
        await b.close()
