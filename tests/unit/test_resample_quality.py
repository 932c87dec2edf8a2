"""The resampler's audio quality: stopband, passband, streaming across chunks, reset."""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from runner.audio.resample import AudioNormalizer, StreamResampler

Samples = npt.NDArray[np.float64]
DOWN = [(48000, 16000), (48000, 24000), (44100, 16000), (32000, 16000), (16000, 8000), (48000, 8000)]
UP = [(16000, 48000), (24000, 48000), (8000, 16000), (16000, 44100), (22050, 48000)]
PAIRS = DOWN + UP
AMPLITUDE = 0.5 * 32767


def tone(rate: int, freq: float, secs: float = 0.5) -> npt.NDArray[np.int16]:
    n = np.arange(int(rate * secs))
    return np.rint(AMPLITUDE * np.sin(2 * np.pi * freq * n / rate)).astype(np.int16)


def stream(resampler: StreamResampler, pcm: npt.NDArray[np.int16], rate: int, sizes: list[int]) -> Samples:
    """Push ``pcm`` in chunks of the given sizes (cycled), then flush."""
    out = bytearray()
    pos, i = 0, 0
    while pos < len(pcm):
        size = sizes[i % len(sizes)]
        out += resampler.push_pcm(pcm[pos : pos + size].tobytes(), rate, 1)
        pos, i = pos + size, i + 1
    out += resampler.flush()
    return np.frombuffer(bytes(out), dtype=np.int16).astype(np.float64)


def convert(pcm: npt.NDArray[np.int16], in_rate: int, out_rate: int, chunk: int | None = None) -> Samples:
    return stream(StreamResampler(out_rate, 1, align=False), pcm, in_rate, [chunk or len(pcm)])


def power_near(x: Samples, rate: int, freq: float, width: float = 60.0) -> float:
    """Energy (dB) of ``x`` within ``width`` Hz of ``freq`` (Blackman window)."""
    spectrum = np.abs(np.fft.rfft(x * np.blackman(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(10 * np.log10(spectrum[np.abs(freqs - freq) <= width].sum() + 1e-20))


def steady(x: Samples, rate: int) -> Samples:
    """Skip the first and last 50 ms (filter start-up and tail)."""
    edge = rate // 20
    return x[edge:-edge]


@settings(max_examples=40, deadline=None)
@given(pair=st.sampled_from(DOWN), where=st.floats(0.0, 1.0))
@example(pair=(48000, 16000), where=(9000 - 8800) / (23520 - 8800))  # the 9 kHz -> 7 kHz alias of issue 13
@example(pair=(48000, 16000), where=0.0)  # right at 1.1x the target Nyquist frequency
def test_tones_above_the_target_nyquist_alias_at_least_60_db_down(pair: tuple[int, int], where: float) -> None:
    in_rate, out_rate = pair
    low, high = 1.1 * out_rate / 2, 0.98 * in_rate / 2
    freq = low + where * (high - low)
    alias = abs(freq - out_rate * round(freq / out_rate))
    ref = steady(convert(tone(in_rate, 1000.0), in_rate, out_rate), out_rate)
    out = steady(convert(tone(in_rate, freq), in_rate, out_rate), out_rate)
    assert power_near(out, out_rate, alias) - power_near(ref, out_rate, 1000.0) <= -60.0, (freq, alias)


@settings(max_examples=30, deadline=None)
@given(pair=st.sampled_from(UP), where=st.floats(0.0, 1.0))
def test_upsampling_images_are_at_least_60_db_down(pair: tuple[int, int], where: float) -> None:
    in_rate, out_rate = pair
    freq = 100.0 + where * (0.85 * in_rate / 2 - 100.0)
    out = steady(convert(tone(in_rate, freq), in_rate, out_rate), out_rate)
    image = in_rate - freq  # the first mirror image above the input's Nyquist frequency
    assert power_near(out, out_rate, image) - power_near(out, out_rate, freq) <= -60.0


def fit(x: Samples, rate: int, freq: float) -> tuple[float, float]:
    """Amplitude of the best sine at ``freq`` and the RMS of what is left over."""
    n = np.arange(len(x))
    basis = np.stack([np.sin(2 * np.pi * freq * n / rate), np.cos(2 * np.pi * freq * n / rate)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    residual = x - basis @ coef
    return float(np.hypot(*coef)), float(np.sqrt(np.mean(residual**2)))


@settings(max_examples=40, deadline=None)
@given(pair=st.sampled_from(PAIRS), where=st.floats(0.0, 1.0))
@example(pair=(48000, 16000), where=1.0)
@example(pair=(16000, 48000), where=0.0)
def test_a_passband_sine_comes_out_as_the_same_sine(pair: tuple[int, int], where: float) -> None:
    in_rate, out_rate = pair
    freq = 50.0 + where * (0.8 * min(in_rate, out_rate) / 2 - 50.0)  # up to 80 % of the lower Nyquist
    out = steady(convert(tone(in_rate, freq), in_rate, out_rate), out_rate)
    amplitude, residual = fit(out, out_rate, freq)
    assert abs(20 * np.log10(amplitude / AMPLITUDE)) <= 0.5
    assert residual <= AMPLITUDE * 10 ** (-50 / 20)  # nothing else but that sine (no other frequency)


@settings(max_examples=40, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    sizes=st.lists(st.integers(1, 2000), min_size=1, max_size=6),
    freq=st.floats(100.0, 3500.0),
)
@example(pair=(48000, 16000), sizes=[960], freq=1000.0)  # the transport's 20 ms frames
@example(pair=(16000, 48000), sizes=[320], freq=1000.0)
@example(pair=(44100, 16000), sizes=[441, 7, 1000], freq=440.0)
def test_chunked_streaming_matches_one_shot_without_clicks(
    pair: tuple[int, int], sizes: list[int], freq: float
) -> None:
    in_rate, out_rate = pair
    pcm = tone(in_rate, freq)
    whole = convert(pcm, in_rate, out_rate)
    chunked = stream(StreamResampler(out_rate, 1, align=False), pcm, in_rate, sizes)
    assert len(chunked) == len(whole)
    diff = steady(chunked - whole, out_rate)
    assert 20 * np.log10(np.sqrt(np.mean(diff**2)) / 32768 + 1e-12) < -80.0


@settings(max_examples=30, deadline=None)
@given(pair=st.sampled_from(PAIRS), chunk_ms=st.sampled_from([10, 20, 30]))
def test_aligned_stream_yields_each_chunks_share_at_once(pair: tuple[int, int], chunk_ms: int) -> None:
    in_rate, out_rate = pair
    assume(in_rate * chunk_ms % 1000 == 0)  # whole samples per chunk (22.05 kHz has none in 10 ms)
    normalizer = AudioNormalizer(out_rate, 1, chunk_ms)
    pcm = tone(in_rate, 440.0, secs=1.0)
    size = in_rate * chunk_ms // 1000
    starts = range(0, len(pcm) - size + 1, size)
    counts = [len(normalizer.push_pcm(pcm[i : i + size].tobytes(), in_rate, 1)) for i in starts]
    assert counts == [1] * len(counts), "every input chunk completes one output chunk, no frame held back"


@settings(max_examples=20, deadline=None)
@given(pair=st.sampled_from(PAIRS), split=st.integers(1, 5000))
def test_reset_starts_a_fresh_stream(pair: tuple[int, int], split: int) -> None:
    in_rate, out_rate = pair
    fresh = StreamResampler(out_rate)
    expected = fresh.push_pcm(tone(in_rate, 700.0).tobytes(), in_rate, 1)
    used = StreamResampler(out_rate)
    used.push_pcm(tone(in_rate, 3000.0)[:split].tobytes(), in_rate, 1)
    used.reset()
    assert used.push_pcm(tone(in_rate, 700.0).tobytes(), in_rate, 1) == expected


def test_stereo_is_downmixed_and_a_format_change_drains_the_old_filter() -> None:
    resampler = StreamResampler(16000, 1, align=False)
    mono = tone(48000, 1000.0)
    stereo = np.repeat(mono, 2)
    first = resampler.push_pcm(stereo.tobytes(), 48000, 2)
    switched = resampler.push_pcm(tone(24000, 1000.0).tobytes(), 24000, 1)  # drains the 48 kHz tail first
    total = np.frombuffer(first + switched + resampler.flush(), dtype=np.int16)
    assert len(total) == 8000 + 8000  # 0.5 s at 48 kHz and 0.5 s at 24 kHz, all of it at 16 kHz
    amplitude, _ = fit(total[800:7200].astype(np.float64), 16000, 1000.0)
    assert abs(20 * np.log10(amplitude / AMPLITUDE)) <= 0.5


@settings(max_examples=20, deadline=None)
@given(fmt=st.sampled_from(["s16", "s16p", "s32", "flt", "fltp", "dbl"]), layout=st.sampled_from(["mono", "stereo"]))
def test_any_sample_format_and_layout_comes_out_as_the_same_s16_mono_sine(fmt: str, layout: str) -> None:
    rate, channels = 44100, 1 if layout == "mono" else 2
    wave = np.sin(2 * np.pi * 1000.0 * np.arange(rate // 2) / rate) * 0.5
    if fmt.startswith("s16"):
        values: npt.NDArray[np.generic] = np.rint(wave * 32767).astype(np.int16)
    elif fmt == "s32":
        values = np.rint(wave * 2147483647).astype(np.int32)
    else:
        values = wave.astype(np.float32 if fmt.startswith("flt") else np.float64)
    planar = fmt.endswith("p")
    array = np.tile(values, (channels, 1)) if planar else np.repeat(values, channels).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(array, format=fmt, layout=layout)
    frame.sample_rate = rate
    resampler = StreamResampler(16000, 1, align=False)
    out = np.frombuffer(resampler.push(frame) + resampler.flush(), dtype=np.int16).astype(np.float64)
    assert len(out) == 8000
    amplitude, residual = fit(steady(out, 16000), 16000, 1000.0)
    assert abs(20 * np.log10(amplitude / AMPLITUDE)) <= 0.5
    assert residual <= AMPLITUDE * 10 ** (-50 / 20)


@settings(max_examples=60, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    channels=st.sampled_from([1, 2]),
    sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=12),
)
@example(pair=(48000, 16000), channels=1, sizes=[1])  # less than one sample
@example(pair=(16000, 48000), channels=2, sizes=[3, 0, 5, 641])  # odd byte counts, partial stereo frames
def test_any_byte_count_is_accepted_and_whole_samples_come_out(
    pair: tuple[int, int], channels: int, sizes: list[int]
) -> None:
    in_rate, out_rate = pair
    resampler = StreamResampler(out_rate, 1)
    pieces = [resampler.push_pcm(bytes(size), in_rate, channels) for size in sizes]
    pieces.append(resampler.flush())
    assert all(len(piece) % 2 == 0 for piece in pieces)
    whole = sum(size // (2 * channels) for size in sizes)
    assert sum(len(piece) for piece in pieces) // 2 >= whole * out_rate // in_rate
