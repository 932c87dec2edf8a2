"""Client media: microphone/camera sources, and sinks that measure or record the bot's media.

Sources are aiortc tracks paced against a monotonic clock: audio in 20 ms frames of 48 kHz mono
s16 (a WAV file resampled, a tone, periodic tone bursts, silence), video as a moving-bars test
pattern or a decoded video file. Sinks take the frames the client reads from the bot's tracks:
:class:`AudioMeter` (level, amount, gaps, tone onsets), :class:`WavRecorder`, :class:`VideoRecorder`.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from runner.audio.resample import StreamResampler

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms
VIDEO_CLOCK = 90000


class _PacedTrack(MediaStreamTrack):
    """Releases one frame per period, no earlier than its presentation time."""

    def __init__(self, period: float) -> None:
        super().__init__()
        self._period = period
        self._start: float | None = None
        self._count = 0

    async def _next_slot(self) -> float:
        """Wait for the next frame's slot; returns its scheduled monotonic time."""
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._count * self._period
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 0.5:  # fell far behind (event loop stalled): re-anchor, do not burst
            self._start = now - self._count * self._period
            due = now
        self._count += 1
        return due


class AudioSource(_PacedTrack):
    """Base for 48 kHz mono microphone sources; subclasses implement :meth:`samples`."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__(FRAME_SAMPLES / SAMPLE_RATE)
        self._pts = 0

    def samples(self, start: int, count: int) -> np.ndarray:
        """``count`` int16 samples from sample index ``start``."""
        return np.zeros(count, dtype=np.int16)

    def on_frame(self, start: int, released_at: float) -> None:
        """Hook: the frame starting at sample ``start`` is being sent at ``released_at``."""

    async def recv(self) -> av.AudioFrame:
        released = await self._next_slot()
        data = self.samples(self._pts, FRAME_SAMPLES)
        frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self.on_frame(self._pts, released)
        self._pts += FRAME_SAMPLES
        return frame


class SilenceSource(AudioSource):
    """Digital silence (keeps RTP flowing)."""


class ToneSource(AudioSource):
    """A sine tone; with ``burst_secs``/``period_secs``, short bursts whose onsets are logged."""

    def __init__(
        self,
        frequency: float = 440.0,
        amplitude_dbfs: float = -12.0,
        burst_secs: float | None = None,
        period_secs: float = 1.0,
    ) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = 32767.0 * 10 ** (amplitude_dbfs / 20.0)
        self.burst = int(burst_secs * SAMPLE_RATE) if burst_secs else None
        self.period = int(period_secs * SAMPLE_RATE)
        #: Monotonic send times of burst onsets (bursts mode only).
        self.onsets: list[float] = []

    def samples(self, start: int, count: int) -> np.ndarray:
        index = np.arange(start, start + count)
        wave_ = self.amplitude * np.sin(2 * math.pi * self.frequency * index / SAMPLE_RATE)
        if self.burst is not None:
            wave_ = np.where((index % self.period) < self.burst, wave_, 0.0)
        return wave_.astype(np.int16)

    def on_frame(self, start: int, released_at: float) -> None:
        if self.burst is None:
            return
        offset = (-start) % self.period
        if offset < FRAME_SAMPLES:
            self.onsets.append(released_at + offset / SAMPLE_RATE)


def read_audio_file(path: str | Path) -> np.ndarray:
    """Decode any audio file (WAV, ...) to 48 kHz mono int16 samples."""
    resampler = StreamResampler(SAMPLE_RATE, 1, align=False)
    chunks: list[bytes] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path}: no audio stream")
        for frame in container.decode(audio=0):
            chunks.append(resampler.push(frame))
    chunks.append(resampler.flush())
    return np.frombuffer(b"".join(chunks), dtype=np.int16).copy()


class WavSource(AudioSource):
    """Plays an audio file (resampled to 48 kHz mono), then silence, or loops it."""

    def __init__(self, path: str | Path, loop: bool = False) -> None:
        super().__init__()
        self.data = read_audio_file(path)
        self.loop = loop

    @property
    def duration(self) -> float:
        """Length of the file in seconds."""
        return len(self.data) / SAMPLE_RATE

    def samples(self, start: int, count: int) -> np.ndarray:
        total = len(self.data)
        if total == 0:
            return np.zeros(count, dtype=np.int16)
        if self.loop:
            return self.data[np.arange(start, start + count) % total]
        chunk = self.data[start : start + count]
        if len(chunk) < count:
            chunk = np.concatenate([chunk, np.zeros(count - len(chunk), dtype=np.int16)])
        return chunk


class VideoSource(_PacedTrack):
    """Base for camera sources; subclasses implement :meth:`image` (RGB24 ``H x W x 3``)."""

    kind = "video"

    def __init__(self, fps: float = 15.0) -> None:
        super().__init__(1.0 / fps)
        self.fps = fps
        self._index = 0

    def image(self, index: int) -> np.ndarray:
        """The RGB image of frame ``index``."""
        raise NotImplementedError

    async def recv(self) -> av.VideoFrame:
        await self._next_slot()
        frame = av.VideoFrame.from_ndarray(self.image(self._index), format="rgb24")
        frame.pts = int(self._index * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._index += 1
        return frame


class TestPatternSource(VideoSource):
    """Colour bars scrolling sideways, with a frame counter bar at the bottom."""

    __test__ = False  # not a pytest class

    COLOURS = np.array(
        [[235, 235, 235], [235, 235, 16], [16, 235, 235], [16, 235, 16], [235, 16, 235], [235, 16, 16], [16, 16, 235]],
        dtype=np.uint8,
    )

    def __init__(self, width: int = 320, height: int = 240, fps: float = 15.0) -> None:
        super().__init__(fps)
        self.width = width - width % 2
        self.height = height - height % 2
        self._row = self.COLOURS[np.arange(self.width) * len(self.COLOURS) // self.width]

    def image(self, index: int) -> np.ndarray:
        row = np.roll(self._row, index * 4, axis=0)
        img = np.broadcast_to(row, (self.height, self.width, 3)).copy()
        marker = (index * 8) % self.width
        img[-16:, :, :] = 16
        img[-16:, marker : marker + 8, :] = 235
        return img


class VideoFileSource(VideoSource):
    """Decodes the first video stream of a file at its own frame rate, looping at the end."""

    def __init__(self, path: str | Path, loop: bool = True) -> None:
        self.path = str(path)
        self.loop = loop
        with av.open(self.path) as probe:
            if not probe.streams.video:
                raise ValueError(f"{path}: no video stream")
            rate = probe.streams.video[0].average_rate
        super().__init__(float(rate) if rate else 25.0)
        self._frames: Iterator[Any] | None = None
        self._container: Any = None

    def _iterate(self) -> Iterator[Any]:
        while True:
            self._container = av.open(self.path)
            try:
                yield from self._container.decode(video=0)
            finally:
                self._container.close()
            if not self.loop:
                return

    def image(self, index: int) -> np.ndarray:
        if self._frames is None:
            self._frames = self._iterate()
        frame = next(self._frames, None)
        if frame is None:
            raise MediaStreamError
        return np.asarray(frame.to_ndarray(format="rgb24"))

    def stop(self) -> None:
        super().stop()
        frames, self._frames = self._frames, None
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # runs the generator's finally: closes the container


def dbfs(rms: float) -> float:
    """An RMS of int16 samples in dBFS (-inf for silence)."""
    return 20.0 * math.log10(rms / 32768.0) if rms > 0 else float("-inf")


class AudioConverter:
    """Any decoded ``av.AudioFrame`` (opus stereo 48 kHz, PCMU 8 kHz, ...) to 48 kHz mono int16."""

    def __init__(self) -> None:
        self._resampler = StreamResampler(SAMPLE_RATE, 1)

    def convert(self, frame: av.AudioFrame) -> np.ndarray:
        """The samples of ``frame`` at 48 kHz (a stream: the filter state carries across frames)."""
        return np.frombuffer(self._resampler.push(frame), dtype=np.int16)


class AudioMeter:
    """Level, amount, arrival gaps and tone onsets of received audio (48 kHz mono)."""

    def __init__(self, onset_dbfs: float = -35.0, min_silence_secs: float = 0.25, gap_secs: float = 0.1) -> None:
        self.samples = 0
        self._sum_squares = 0.0
        self._recent: list[tuple[float, float]] = []
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.gaps = 0
        self.longest_gap = 0.0
        self.gap_secs = gap_secs
        self.onsets: list[float] = []
        self._threshold = 32768.0 * 10 ** (onset_dbfs / 20.0)
        self._quiet_blocks_needed = int(min_silence_secs / 0.005)
        self._quiet_blocks = self._quiet_blocks_needed

    @property
    def seconds(self) -> float:
        """Seconds of audio received."""
        return self.samples / SAMPLE_RATE

    @property
    def rms_dbfs(self) -> float:
        """Overall RMS level."""
        return dbfs(math.sqrt(self._sum_squares / self.samples)) if self.samples else float("-inf")

    def level_dbfs(self, window: float = 0.3) -> float:
        """RMS level of the last ``window`` seconds."""
        if not self._recent:
            return float("-inf")
        cutoff = self._recent[-1][0] - window
        values = [sq for t, sq in self._recent if t >= cutoff]
        return dbfs(math.sqrt(sum(values) / len(values))) if values else float("-inf")

    def feed(self, samples: np.ndarray, at: float | None = None) -> None:
        """Account for ``samples`` that arrived at monotonic time ``at``."""
        if not len(samples):
            return
        now = time.monotonic() if at is None else at
        if self.first_at is None:
            self.first_at = now
        elif self.last_at is not None and now - self.last_at > self.gap_secs:
            self.gaps += 1
            self.longest_gap = max(self.longest_gap, now - self.last_at)
        self.last_at = now
        values = samples.astype(np.float64)
        squares = float(np.dot(values, values))
        self._sum_squares += squares
        self.samples += len(samples)
        self._recent.append((now, squares / len(samples)))
        if len(self._recent) > 100:
            del self._recent[:50]
        self._detect_onsets(values, now)

    def _detect_onsets(self, values: np.ndarray, now: float) -> None:
        block = SAMPLE_RATE // 200  # 5 ms
        for i in range(0, len(values) - block + 1, block):
            chunk = values[i : i + block]
            loud = math.sqrt(float(np.dot(chunk, chunk)) / block) > self._threshold
            if loud and self._quiet_blocks >= self._quiet_blocks_needed:
                self.onsets.append(now + i / SAMPLE_RATE)
            self._quiet_blocks = 0 if loud else self._quiet_blocks + 1

    def continuity(self, elapsed: float | None = None) -> float:
        """Received audio seconds over wall-clock seconds since the first frame (1.0 = no loss)."""
        if self.first_at is None or self.last_at is None:
            return 0.0
        span = elapsed if elapsed is not None else (self.last_at - self.first_at) + FRAME_SAMPLES / SAMPLE_RATE
        return min(1.0, self.seconds / span) if span > 0 else 0.0


def echo_latencies(sent: list[float], received: list[float], max_secs: float = 1.0) -> list[float]:
    """Pair each received onset with the latest earlier sent onset (within ``max_secs``)."""
    result: list[float] = []
    used: set[int] = set()
    for got in received:
        best = None
        for i, t in enumerate(sent):
            if t <= got and got - t <= max_secs and i not in used:
                best = i
        if best is not None:
            used.add(best)
            result.append(got - sent[best])
    return result


class WavRecorder:
    """Writes received audio as a 48 kHz mono 16-bit WAV file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._wav: wave.Wave_write | None = wave.open(str(self.path), "wb")  # noqa: SIM115
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self.samples = 0

    def write(self, samples: np.ndarray) -> None:
        """Append samples (ignored once closed)."""
        if self._wav is not None and len(samples):
            self._wav.writeframes(samples.astype("<i2").tobytes())
            self.samples += len(samples)

    def close(self) -> None:
        """Finish the file."""
        if self._wav is not None:
            self._wav.close()
            self._wav = None


class VideoRecorder:
    """Records received video: ``.mp4`` (H.264), ``.webm`` (VP8), or a directory of PNG frames."""

    def __init__(self, path: str | Path, fps: int = 15) -> None:
        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None
        self._png = self.path.suffix.lower() not in (".mp4", ".webm", ".mkv")
        if self._png:
            self.path.mkdir(parents=True, exist_ok=True)

    def write(self, frame: av.VideoFrame) -> None:
        """Append one frame (scaled to the first frame's size)."""
        if self._png:
            self._write_png(frame)
            return
        if self._container is None:
            self._open(frame.width - frame.width % 2, frame.height - frame.height % 2)
        assert self._size is not None
        out = frame.reformat(width=self._size[0], height=self._size[1], format="yuv420p")
        out.pts = self.frames
        out.time_base = fractions.Fraction(1, self.fps)
        for packet in self._stream.encode(out):
            self._container.mux(packet)
        self.frames += 1

    def _write_png(self, frame: av.VideoFrame) -> None:
        codec = av.CodecContext.create("png", "w")
        codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "rgb24"
        rgb = frame.reformat(format="rgb24")
        data = b"".join(bytes(p) for p in [*codec.encode(rgb), *codec.encode(None)])
        (self.path / f"frame_{self.frames:05d}.png").write_bytes(data)
        self.frames += 1

    def _open(self, width: int, height: int) -> None:
        codec = "libvpx" if self.path.suffix.lower() == ".webm" else "libx264"
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream(codec, rate=self.fps)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._size = (width, height)

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._container is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._container = None
