"""Audio normalisation: any rate/layout in, fixed-rate s16 PCM out, optionally in exact chunks.

:class:`AudioNormalizer` is stateful: it keeps one ``av.AudioResampler`` per input format
(rebuilt when the format changes) and a byte buffer that re-chunks the converted audio
into pieces of exactly ``chunk_ms`` milliseconds. Used by the transport input (decoded
WebRTC frames -> 16 kHz mono 20 ms chunks) and output (any ``OutputAudioRawFrame`` ->
the track's rate).

Integer rate ratios (48 kHz -> 16/24 kHz, 16/24 kHz -> 48 kHz, ...) of packed s16 audio with
a mono result take a NumPy polyphase FIR (:class:`_RatioResampler`) instead of a libswresample
filter graph: about a tenth of the CPU per 20 ms frame, and no samples held back (each input
frame yields its exact share of output at once; the filter's ~0.5 ms group delay is in the
signal, not in a buffer). Other conversions go through ``av.AudioResampler``.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

_LAYOUTS = {1: "mono", 2: "stereo"}


def layout_name(num_channels: int) -> str:
    """PyAV layout name for a channel count (mono or stereo)."""
    try:
        return _LAYOUTS[num_channels]
    except KeyError:
        raise ValueError(f"unsupported channel count {num_channels} (1 or 2)") from None


def pcm_to_frame(pcm: bytes, sample_rate: int, num_channels: int) -> av.AudioFrame:
    """Wrap interleaved s16 PCM in an ``av.AudioFrame``."""
    samples = np.frombuffer(pcm, dtype=np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout=layout_name(num_channels))
    frame.sample_rate = sample_rate
    return frame


def frame_to_pcm(frame: av.AudioFrame) -> bytes:
    """Interleaved s16 bytes of a packed s16 frame (exactly ``samples * channels * 2`` bytes)."""
    nbytes = frame.samples * len(frame.layout.channels) * 2
    return bytes(frame.planes[0])[:nbytes]


#: Largest integer factor the polyphase path handles (8 kHz <-> 48 kHz).
MAX_RATIO = 6
#: Filter taps per polyphase branch (per input sample when decimating, per output phase when
#: interpolating): a Kaiser-windowed sinc of ``TAPS_PER_PHASE * factor`` taps.
TAPS_PER_PHASE = 16
_KAISER_BETA = 8.0
_CUTOFF = 0.92  # of the lower rate's Nyquist frequency
_HALVES = np.array([0.5, 0.5], dtype=np.float32)  # stereo -> mono downmix


def _lowpass(factor: int) -> np.ndarray:
    """Unity-gain low-pass FIR for a rate change by ``factor`` (cut below the lower Nyquist)."""
    taps = TAPS_PER_PHASE * factor
    fc = 0.5 * _CUTOFF / factor  # cycles per sample at the higher rate
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * fc * np.sinc(2 * fc * n) * np.kaiser(taps, _KAISER_BETA)
    result: np.ndarray = (h / h.sum()).astype(np.float32)
    return result


class _RatioResampler:
    """Stateful s16 resampler by an integer factor (down when ``down``), mono output.

    Stereo input is averaged to mono first (as libswresample's downmix does). Output is
    produced for every input sample at once: decimating by M, ``n`` input samples yield
    ``n / M`` outputs (remainders carry over); interpolating by L, exactly ``n * L``.
    """

    def __init__(self, factor: int, down: bool) -> None:
        self.factor = factor
        self.down = down
        h = _lowpass(factor)
        self._index: np.ndarray | None = None
        self._index_len = 0
        if down:
            self._taps = h  # np.convolve flips it
            self._history = np.zeros(len(h) - 1, dtype=np.float32)
        else:
            # Branch r makes output n*L + r from inputs n, n-1, ...: taps h[r], h[r+L], ...
            branches = (h * factor).reshape(-1, factor)  # [k, r] = h[k*L + r]
            self._taps = branches[::-1].copy()  # windows are oldest-first
            self._history = np.zeros(branches.shape[0] - 1, dtype=np.float32)

    def process(self, pcm: np.ndarray, channels: int) -> bytes:
        """Resample interleaved s16 samples (``channels`` of them per frame); s16 mono bytes out."""
        if channels == 2:
            x = np.dot(pcm.reshape(-1, 2), _HALVES)
        else:
            x = pcm.astype(np.float32)
        buf = np.concatenate((self._history, x))
        if self.down:
            taps = len(self._taps)
            if len(buf) < taps:
                self._history = buf
                return b""
            count = (len(buf) - taps) // self.factor + 1
            out = np.convolve(buf, self._taps, "valid")[:: self.factor][:count]
            self._history = buf[count * self.factor :]
        else:
            width = self._taps.shape[0]
            count = len(buf) - (width - 1)
            if count != self._index_len or self._index is None:  # windows as a gather index
                self._index = np.arange(count)[:, None] + np.arange(width)[None, :]
                self._index_len = count
            out = (buf[self._index] @ self._taps).reshape(-1)
            self._history = buf[count:]
        out = np.rint(out)  # ufuncs in place: np.clip's Python wrapper costs more than the math
        np.maximum(out, -32768.0, out=out)
        np.minimum(out, 32767.0, out=out)
        return out.astype(np.int16).tobytes()

    def drain(self) -> bytes:
        """The samples still inside the filter (its group delay), pushed out by silence."""
        delay = (TAPS_PER_PHASE * self.factor) // 2
        if not self.down:
            delay = -(-delay // self.factor)  # in input samples
        else:
            delay = -(-delay // self.factor) * self.factor
        return self.process(np.zeros(delay, dtype=np.int16), 1)


def _ratio(in_rate: int, out_rate: int) -> tuple[int, bool] | None:
    """(factor, down) when ``out_rate`` is ``in_rate`` times or divided by an integer <= MAX_RATIO."""
    if in_rate <= 0 or out_rate <= 0:
        return None
    if in_rate >= out_rate and in_rate % out_rate == 0 and in_rate // out_rate <= MAX_RATIO:
        return in_rate // out_rate, True
    if out_rate % in_rate == 0 and out_rate // in_rate <= MAX_RATIO:
        return out_rate // in_rate, False
    return None


@dataclass(frozen=True, slots=True)
class _InputFormat:
    fmt: str
    layout: str
    rate: int


class AudioNormalizer:
    """Converts audio to ``sample_rate``/``num_channels`` s16 and re-chunks it.

    ``chunk_ms=None`` disables chunking: :meth:`push_pcm`/:meth:`push_frame` then return
    everything converted so far as one piece (or nothing).
    """

    def __init__(self, sample_rate: int, num_channels: int = 1, chunk_ms: int | None = 20) -> None:
        layout_name(num_channels)
        self.sample_rate = sample_rate
        self.num_channels = num_channels
        self.chunk_ms = chunk_ms
        self._layout = layout_name(num_channels)
        self._buffer = bytearray()
        self._resampler: av.AudioResampler | None = None
        self._ratio: _RatioResampler | None = None
        self._input: _InputFormat | None = None

    @property
    def chunk_bytes(self) -> int:
        """Bytes in one output chunk (0 when chunking is off)."""
        if self.chunk_ms is None:
            return 0
        return self.sample_rate * self.chunk_ms // 1000 * self.num_channels * 2

    @property
    def buffered_bytes(self) -> int:
        """Converted bytes waiting for a full chunk."""
        return len(self._buffer)

    def push_frame(self, frame: av.AudioFrame) -> list[bytes]:
        """Convert one decoded frame; return the complete chunks now available."""
        fmt = _InputFormat(frame.format.name, frame.layout.name, frame.sample_rate)
        if fmt.fmt == "s16" and fmt.layout == self._layout and fmt.rate == self.sample_rate:
            self._switch_input(fmt)
            self._buffer += frame_to_pcm(frame)
        elif self._fast_path(fmt):
            assert self._ratio is not None
            channels = 2 if fmt.layout == "stereo" else 1
            pcm = np.frombuffer(memoryview(frame.planes[0]), dtype=np.int16, count=frame.samples * channels)
            self._buffer += self._ratio.process(pcm, channels)
        else:
            self._buffer += self._resample(fmt, frame)
        return self._take_chunks()

    def push_pcm(self, pcm: bytes, sample_rate: int, num_channels: int) -> list[bytes]:
        """Convert interleaved s16 PCM; return the complete chunks now available."""
        if not pcm:
            return self._take_chunks()
        if sample_rate == self.sample_rate and num_channels == self.num_channels:
            self._switch_input(_InputFormat("s16", self._layout, sample_rate))
            self._buffer += pcm
            return self._take_chunks()
        if num_channels in (1, 2) and self._fast_path(_InputFormat("s16", layout_name(num_channels), sample_rate)):
            assert self._ratio is not None
            usable = len(pcm) // (2 * num_channels) * num_channels
            self._buffer += self._ratio.process(np.frombuffer(pcm, dtype=np.int16, count=usable), num_channels)
            return self._take_chunks()
        return self.push_frame(pcm_to_frame(pcm, sample_rate, num_channels))

    def flush(self) -> list[bytes]:
        """Drain the resampler; the last partial chunk is padded with silence."""
        self._drain_resampler()
        chunks = self._take_chunks()
        if self._buffer:
            size = self.chunk_bytes or len(self._buffer)
            chunks.append(bytes(self._buffer) + bytes(size - len(self._buffer)))
            self._buffer.clear()
        return chunks

    def reset(self) -> None:
        """Forget buffered audio and resampler state (e.g. the source track changed)."""
        self._buffer.clear()
        self._resampler = None
        self._ratio = None
        self._input = None

    # ------------------------------------------------------------ internals

    def _switch_input(self, fmt: _InputFormat) -> None:
        if fmt != self._input:
            self._drain_resampler()
            self._resampler = None
            self._input = fmt

    def _fast_path(self, fmt: _InputFormat) -> bool:
        """Use (creating if needed) the polyphase resampler for ``fmt`` when it applies."""
        if fmt == self._input and self._ratio is not None:
            return True
        if fmt.fmt != "s16" or self.num_channels != 1 or fmt.layout not in ("mono", "stereo"):
            return False
        ratio = _ratio(fmt.rate, self.sample_rate)
        if ratio is None:
            return False
        self._switch_input(fmt)
        self._ratio = _RatioResampler(*ratio)
        return True

    def _resample(self, fmt: _InputFormat, frame: av.AudioFrame) -> bytes:
        self._switch_input(fmt)
        fresh = self._resampler is None
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout=self._layout, rate=self.sample_rate)
        frame.pts = None  # we re-chunk ourselves; timestamps would only confuse the filter graph
        out = b"".join(frame_to_pcm(f) for f in self._resampler.resample(frame))
        size = self.chunk_bytes
        if fresh and size and not self._buffer and out:
            # The resampler's filter holds back a few samples (~1 ms), so every chunk would
            # complete only when the *next* input frame arrives (+1 frame of latency). Pad
            # the stream start once by that deficit so chunks line up with input frames.
            deficit = -len(out) % size
            if 0 < deficit <= size // 4:
                out = bytes(deficit) + out
        return out

    def _drain_resampler(self) -> None:
        if self._ratio is not None:
            self._buffer += self._ratio.drain()
            self._ratio = None
        if self._resampler is not None:
            for out in self._resampler.resample(None):
                self._buffer += frame_to_pcm(out)
            self._resampler = None

    def _take_chunks(self) -> list[bytes]:
        size = self.chunk_bytes
        if size == 0:
            if not self._buffer:
                return []
            out = bytes(self._buffer)
            self._buffer.clear()
            return [out]
        count = len(self._buffer) // size
        if count == 0:
            return []
        end = count * size
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return [data[i : i + size] for i in range(0, end, size)]


__all__ = ["AudioNormalizer", "frame_to_pcm", "layout_name", "pcm_to_frame"]
