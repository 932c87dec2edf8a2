"""Outbound tracks: pacing, backpressure, interruption, stalls, and real loopback peers.

Pacing is tested against an injected clock that moves only when a track sleeps, so the
assertions are exact schedules and timestamps, never wall-clock durations.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

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


#: Loop iterations a fake sleep yields: enough for a woken writer (event -> wait_for -> task) to run.
SETTLE_STEPS = 10


class FakeClock:
    """Time that moves only when a track sleeps (or a test says the loop stalled)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, secs: float) -> None:
        self.now += max(secs, 0.0)
        for _ in range(SETTLE_STEPS):  # let the other tasks run, as a real sleep would
            await asyncio.sleep(0)


async def yield_until(check: Callable[[], bool]) -> None:
    """Let other tasks run until ``check`` (no time passes on the fake clock meanwhile)."""
    while not check():  # noqa: ASYNC110 - a consumer on the fake clock drives the state
        await asyncio.sleep(0)


def audio_track(clock: FakeClock, rate: int = 16000, **kwargs: Any) -> AudioOutputTrack:
    return AudioOutputTrack(rate, clock=clock, sleep=clock.sleep, **kwargs)


async def pull_timed(track: MediaStreamTrack, clock: FakeClock, count: int) -> list[tuple[float, av.AudioFrame]]:
    """Frames with the clock reading at which each one was handed over."""
    out = []
    for _ in range(count):
        frame = await track.recv()
        out.append((clock.now, frame))
    return out  # type: ignore[return-value]


def run_without_suspending(coro: Coroutine[Any, Any, Any]) -> Any:
    """The coroutine's result, asserting it finished without ever waiting."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the coroutine waited")


async def test_pacing_follows_the_clock_with_continuous_pts() -> None:
    clock = FakeClock()
    track = audio_track(clock, 24000)
    start = clock.now
    timed = await pull_timed(track, clock, 50)
    assert [round(t - start, 6) for t, _ in timed] == [round(i * 0.02, 6) for i in range(50)]
    frames = [f for _, f in timed]
    assert [f.pts for f in frames] == [i * 480 for i in range(50)]
    assert all(f.samples == 480 and f.sample_rate == 24000 and f.layout.name == "mono" for f in frames)
    assert max(rms(f) for f in frames) == 0  # idle: silence


async def test_write_backpressure_keeps_at_most_40ms() -> None:
    clock = FakeClock()
    track = audio_track(clock)
    levels: list[int] = []
    start = clock.now

    async def consume() -> None:
        for _ in range(30):
            await track.recv()
            levels.append(track.buffered_bytes)

    consumer = asyncio.get_running_loop().create_task(consume())
    assert await track.write(tone_pcm(16000, 0.3))
    written_at = clock.now - start
    await consumer
    assert max(levels) <= 16000 * 0.04 * 2
    # the writer was held back to the send schedule: 15 frames, of which 2 fit the buffer
    assert 0.2 <= written_at <= 0.3


async def test_clear_aborts_pending_write_and_silences() -> None:
    clock = FakeClock()
    track = audio_track(clock)
    writer = asyncio.get_running_loop().create_task(track.write(tone_pcm(16000, 2.0)))
    await asyncio.sleep(0)
    before = await pull(track, 15)
    assert sum(1 for f in before if rms(f) > 1000) >= 10
    track.clear()
    assert await asyncio.wait_for(writer, 5) is False
    after = await pull(track, 10)
    assert all(rms(f) == 0 for f in after)
    assert [f.pts for f in before + after] == [i * 320 for i in range(25)]
    track.stop()


async def test_write_without_consumer_drops_instead_of_hanging() -> None:
    clock = FakeClock()
    track = audio_track(clock, consumer_timeout=0.2)
    writer = asyncio.get_running_loop().create_task(track.write(tone_pcm(16000, 0.5)))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not writer.done() and track.buffered_bytes == 1280  # 40 ms buffered, waiting for room
    clock.now += 0.3  # nobody pulled a frame for longer than consumer_timeout
    assert await asyncio.wait_for(writer, 5) is False
    assert track.bytes_dropped == 16000 - 1280
    assert run_without_suspending(track.write(tone_pcm(16000, 0.5))) is False  # still nobody: no wait at all
    track.stop()
    assert run_without_suspending(track.write(tone_pcm(16000, 0.1))) is False


async def test_stall_catches_up_without_growing_latency() -> None:
    clock = FakeClock()
    track = audio_track(clock)
    await pull(track, 10)
    clock.now += 0.2  # the event loop was busy for 200 ms
    stalled_at = clock.now
    owed = await pull_timed(track, clock, 10)
    assert all(t == stalled_at for t, _ in owed)  # the owed frames go out back to back
    assert [f.pts for _, f in owed] == [(10 + i) * 320 for i in range(10)]
    after = await pull_timed(track, clock, 5)
    assert [round(t - stalled_at, 6) for t, _ in after] == [0.02, 0.04, 0.06, 0.08, 0.1]  # real time again
    assert track.frames_skipped == 0


async def test_long_stall_skips_instead_of_bursting() -> None:
    clock = FakeClock()
    track = audio_track(clock, max_lag=0.1)
    await pull(track, 5)  # frames 0..4, the last at t0 + 80 ms
    clock.now += 0.3  # a long stall: now t0 + 380 ms
    (frame,) = await pull(track, 1)
    assert track.frames_skipped == 14
    assert frame.pts == 19 * 320  # timestamps follow the clock


async def test_backlog_behind_a_late_real_time_writer_is_worked_off() -> None:
    """An echo whose input was held up: the delayed burst must not stand as a queue upstream."""
    clock = FakeClock()
    track = audio_track(clock)
    produced: list[bytes] = []  # the real-time source upstream (a mic), one frame per slot
    upstream: list[bytes] = []  # what waits for the track (the input's queue)
    held = False  # while True the source's frames are held up (a network hiccup)

    async def writer() -> None:
        while True:
            await yield_until(lambda: bool(upstream))
            await track.write(upstream.pop(0))

    def frame_of(index: int) -> bytes:
        return np.full(320, index + 1, np.int16).tobytes()

    task = asyncio.get_running_loop().create_task(writer())
    lags = []
    try:
        for slot in range(80):
            produced.append(frame_of(slot))
            held = 20 <= slot < 30
            if not held:
                upstream.extend(produced[len(produced) - 1 - (10 if slot == 30 else 0) :])  # the burst at 30
            frame = await track.recv()
            value = int(frame.to_ndarray()[0, 0])
            lags.append(slot - (value - 1) if value else None)
    finally:
        task.cancel()
    assert all(lag is None for lag in lags[22:30])  # silence while the writer's frames were held up
    assert max(lag for lag in lags[10:20] if lag is not None) <= 1
    assert max(lag for lag in lags[60:] if lag is not None) <= 1  # the burst was worked off: no standing queue
    assert track.frames_shed >= 8


async def test_a_writer_ahead_of_real_time_loses_nothing_across_pauses() -> None:
    """TTS: utterances written faster than real time, pauses between them: every frame is sent."""
    clock = FakeClock()
    track = audio_track(clock)

    async def speak() -> None:
        for _ in range(3):
            assert await track.write(tone_pcm(16000, 0.5))
            await yield_until(lambda: not track.buffered_bytes)  # the utterance plays out
            pause_from = track.frames_sent
            await yield_until(lambda p=pause_from: track.frames_sent >= p + 10)  # a pause of 10 frames

    speaker = asyncio.get_running_loop().create_task(speak())
    frames = []
    while not speaker.done():
        frames.append(await track.recv())
    await speaker
    assert sum(1 for f in frames if rms(f) > 1000) == 3 * 25
    assert track.frames_shed == 0 and track.bytes_dropped == 0


async def test_no_auto_silence_waits_for_audio() -> None:
    clock = FakeClock()
    track = audio_track(clock, auto_silence=False)
    waiter = asyncio.get_running_loop().create_task(track.recv())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not waiter.done()
    await track.write(tone_pcm(16000, 0.02))
    frame = await asyncio.wait_for(waiter, 5)
    assert rms(frame) > 1000
    track.stop()


async def test_video_track_repeats_and_scales() -> None:
    clock = FakeClock()
    track = VideoOutputTrack(160, 120, framerate=20, clock=clock, sleep=clock.sleep)
    first = await track.recv()
    assert (first.width, first.height) == (160, 120)
    red = np.zeros((60, 80, 3), np.uint8)
    red[..., 0] = 255
    track.add_image(red.tobytes(), (80, 60), "RGB")
    start = clock.now
    frames = []
    times = []
    for _ in range(10):
        frames.append(await track.recv())
        times.append(round(clock.now - start, 6))
    assert times == [round((i + 1) * 0.05, 6) for i in range(10)]
    assert all((f.width, f.height) == (160, 120) for f in frames)
    assert [f.pts for f in frames] == [round((i + 1) * VIDEO_CLOCK_RATE / 20) for i in range(10)]
    r, g, b = frames[-1].to_ndarray(format="rgb24")[60, 80]
    assert r > 200 and g < 60


async def test_live_video_waits_for_new_frames() -> None:
    clock = FakeClock()
    track = VideoOutputTrack(64, 48, framerate=30, is_live=True, clock=clock, sleep=clock.sleep)
    waiter = asyncio.get_running_loop().create_task(track.recv())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not waiter.done()
    track.add_frame(av.VideoFrame(64, 48, "yuv420p"))
    frame = await asyncio.wait_for(waiter, 5)
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


async def wait_until(check: Callable[[], bool], within: float = 15.0) -> None:
    """Poll ``check``; ``within`` only bounds the wait."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - media state has no event to wait on
            await asyncio.sleep(0.02)


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
        await wait_until(lambda: bool(received["audio"]) and bool(received["video"]))
        await audio.write(tone_pcm(24000, 1.0))

        def loud_samples() -> np.ndarray:
            frames = list(received["audio"])
            pcm = np.concatenate([f.to_ndarray()[0, ::2] for f in frames]).astype(np.float64)  # left, 48 kHz
            return pcm[np.abs(pcm) > 0]

        await wait_until(lambda: len(loud_samples()) > 48000 * 0.8)
        loud = loud_samples()
        spectrum = np.abs(np.fft.rfft(loud[:32768]))
        assert abs(np.argmax(spectrum) * 48000 / 32768 - 440) < 10
        assert received["video"], "no video frames"
        assert (received["video"][-1].width, received["video"][-1].height) == (320, 240)
    finally:
        for task in readers:
            task.cancel()
        await a.close()
        await b.close()
