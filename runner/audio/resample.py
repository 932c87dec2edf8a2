"""Audio normalisation: any rate/layout in, fixed-rate s16 PCM out, optionally in exact chunks.

:class:`AudioNormalizer` is stateful: it keeps one ``av.AudioResampler`` per input format
(rebuilt when the format changes) and a byte buffer that re-chunks the converted audio
into pieces of exactly ``chunk_ms`` milliseconds. Used by the transport input (decoded
WebRTC frames -> 16 kHz mono 20 ms chunks) and output (any ``OutputAudioRawFrame`` ->
the track's rate).
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
        self._input = None

    # ------------------------------------------------------------ internals

    def _switch_input(self, fmt: _InputFormat) -> None:
        if fmt != self._input:
            self._drain_resampler()
            self._resampler = None
            self._input = fmt

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
