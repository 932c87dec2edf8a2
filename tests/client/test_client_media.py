"""Client media sources, meters and recorders (no network)."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from runner.client.media import (
    SAMPLE_RATE,
    AudioConverter,
    AudioMeter,
    TestPatternSource,
    ToneSource,
    VideoFileSource,
    VideoRecorder,
    WavRecorder,
    WavSource,
    echo_latencies,
)
from tests.client.client_helpers import dominant_frequency, write_tone_wav


async def test_tone_source_frames_and_pacing() -> None:
    source = ToneSource(1000.0)
    start = time.monotonic()
    frames = [await source.recv() for _ in range(10)]
    assert time.monotonic() - start >= 0.17  # 10 x 20 ms, paced
    assert all(f.sample_rate == SAMPLE_RATE and f.samples == 960 for f in frames)
    assert [f.pts for f in frames[:3]] == [0, 960, 1920]
    data = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    assert dominant_frequency(data) == pytest.approx(1000.0, abs=10)
    source.stop()


async def test_tone_bursts_log_onsets() -> None:
    source = ToneSource(800.0, burst_secs=0.1, period_secs=0.2)
    samples = [(await source.recv()).to_ndarray().reshape(-1) for _ in range(20)]
    assert len(source.onsets) == 2  # 400 ms of audio, a burst every 200 ms
    first = np.concatenate(samples)[: int(0.2 * SAMPLE_RATE)]
    assert np.abs(first[: int(0.1 * SAMPLE_RATE)]).max() > 1000
    assert np.abs(first[int(0.1 * SAMPLE_RATE) :]).max() == 0


async def test_wav_source_resamples_to_48k(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    write_tone_wav(path, 600.0, 0.5)
    source = WavSource(path)
    assert source.duration == pytest.approx(0.5, abs=0.01)
    assert dominant_frequency(source.data) == pytest.approx(600.0, abs=5)
    frame = await source.recv()
    assert frame.sample_rate == 48000 and frame.layout.name == "mono"
    tail = source.samples(len(source.data) - 10, 960)
    assert len(tail) == 960 and not tail[20:].any()  # silence after the end


def test_meter_level_onsets_gaps_and_latency() -> None:
    meter = AudioMeter()
    quiet = np.zeros(960, dtype=np.int16)
    loud = (8000 * np.sin(np.arange(960) / 5)).astype(np.int16)
    t = 100.0
    for i in range(20):
        meter.feed(loud if 10 <= i < 15 else quiet, t + i * 0.02)
    meter.feed(quiet, t + 0.6)  # a 200 ms hole
    assert meter.onsets == [pytest.approx(t + 0.2)]
    assert meter.gaps == 1 and meter.longest_gap == pytest.approx(0.22, abs=0.001)
    assert meter.seconds == pytest.approx(21 * 0.02)
    assert -30 < meter.rms_dbfs < -10
    assert echo_latencies([99.9, 100.05], meter.onsets) == [pytest.approx(0.15)]


def test_converter_handles_opus_like_stereo() -> None:
    frame = av.AudioFrame.from_ndarray(np.full((1, 1920), 1000, dtype=np.int16), format="s16", layout="stereo")
    frame.sample_rate = 48000
    out = AudioConverter().convert(frame)
    assert out.dtype == np.int16 and 0 < len(out) <= 960


def test_wav_recorder_roundtrip(tmp_path: Path) -> None:
    rec = WavRecorder(tmp_path / "out.wav")
    rec.write(np.arange(480, dtype=np.int16))
    rec.close()
    rec.write(np.arange(10, dtype=np.int16))  # ignored after close
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (48000, 1, 480)


async def test_test_pattern_moves_and_records(tmp_path: Path) -> None:
    source = TestPatternSource(64, 48, fps=30)
    first, second = await source.recv(), await source.recv()
    assert (first.width, first.height) == (64, 48)
    assert not np.array_equal(first.to_ndarray(format="rgb24"), second.to_ndarray(format="rgb24"))
    frames_dir = VideoRecorder(tmp_path / "frames")
    frames_dir.write(first)
    frames_dir.close()
    assert (tmp_path / "frames" / "frame_00000.png").is_file()
    mp4 = VideoRecorder(tmp_path / "out.mp4")
    for _ in range(5):
        mp4.write(await source.recv())
    mp4.close()
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 5
    source.stop()
    camera = VideoFileSource(tmp_path / "out.mp4", loop=True)
    frames = [await camera.recv() for _ in range(7)]  # 5 in the file: loops
    assert all((f.width, f.height) == (64, 48) for f in frames)
    assert (frames[-1].pts or 0) > (frames[0].pts or 0)
    camera.stop()
