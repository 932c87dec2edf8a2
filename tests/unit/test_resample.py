"""AudioNormalizer: any rate/layout in, exact 20 ms chunks out."""

from __future__ import annotations

import av
import numpy as np
import pytest

from runner.audio.resample import AudioNormalizer, frame_to_pcm, pcm_to_frame


def tone(rate: int, samples: int, start: int = 0, freq: float = 440.0) -> np.ndarray:
    t = (np.arange(samples) + start) / rate
    return (np.sin(2 * np.pi * freq * t) * 12000).astype(np.int16)


def dominant_hz(pcm: bytes, rate: int) -> float:
    data = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
    return float(np.argmax(spectrum) * rate / len(data))


def stereo_frame(samples: np.ndarray, rate: int, pts: int) -> av.AudioFrame:
    interleaved = np.repeat(samples, 2).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout="stereo")
    frame.sample_rate = rate
    frame.pts = pts
    return frame


def test_48k_stereo_to_16k_mono_exact_chunks() -> None:
    norm = AudioNormalizer(16000, 1, 20)
    chunks: list[bytes] = []
    for i in range(50):  # 1 s of 20 ms Opus-like frames
        chunks += norm.push_frame(stereo_frame(tone(48000, 960, i * 960), 48000, i * 960))
        assert len(chunks) == i + 1, "every 20 ms input frame yields one chunk at once"
    assert all(len(c) == 640 for c in chunks)  # 320 samples * 2 bytes
    pcm = b"".join(chunks)
    assert abs(dominant_hz(pcm, 16000) - 440) < 5
    level = np.sqrt(np.mean(np.frombuffer(pcm, np.int16)[1000:].astype(np.float64) ** 2))
    assert 7000 < level < 10000  # 12000 / sqrt(2), amplitude kept


def test_8k_mono_to_16k() -> None:
    norm = AudioNormalizer(16000, 1, 20)
    chunks: list[bytes] = []
    for i in range(25):
        chunks += norm.push_pcm(tone(8000, 160, i * 160).tobytes(), 8000, 1)
    assert len(chunks) == 25
    assert {len(c) for c in chunks} == {640}
    assert abs(dominant_hz(b"".join(chunks), 16000) - 440) < 5


def test_uneven_input_is_rechunked() -> None:
    norm = AudioNormalizer(16000, 1, 20)
    chunks: list[bytes] = []
    for size in (100, 333, 17, 1000, 250):
        chunks += norm.push_pcm(bytes(size * 2), 16000, 1)
    assert all(len(c) == 640 for c in chunks)
    assert len(chunks) == 1700 // 320
    assert norm.buffered_bytes == (1700 % 320) * 2
    tail = norm.flush()
    assert [len(c) for c in tail] == [640]


def test_stereo_output_and_format_switch() -> None:
    norm = AudioNormalizer(16000, 2, 20)
    out = norm.push_frame(stereo_frame(tone(48000, 960), 48000, 0))
    out += norm.push_pcm(tone(16000, 320).tobytes(), 16000, 1)  # layout change mid-stream
    assert all(len(c) == 1280 for c in out)
    assert len(out) >= 1


def test_reset_forgets_buffer() -> None:
    norm = AudioNormalizer(16000, 1, 20)
    norm.push_pcm(bytes(100), 16000, 1)
    norm.reset()
    assert norm.buffered_bytes == 0


def test_unchunked_mode_returns_everything() -> None:
    norm = AudioNormalizer(24000, 1, chunk_ms=None)
    (out,) = norm.push_pcm(tone(16000, 320).tobytes(), 16000, 1)
    assert 440 <= len(out) // 2 <= 480


def test_pcm_frame_round_trip() -> None:
    pcm = tone(16000, 320).tobytes()
    assert frame_to_pcm(pcm_to_frame(pcm, 16000, 1)) == pcm
    with pytest.raises(ValueError):
        AudioNormalizer(16000, 3)
