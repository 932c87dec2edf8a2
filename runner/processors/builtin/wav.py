"""WAV recording and playback: ``audio.wav_recorder`` and ``audio.wav_player``.

The player reads with the standard library's :mod:`wave` module (integer PCM only); the
recorder writes the 44-byte header itself so it can keep the sizes right after every write.
Both use the core's one resampler (:mod:`runner.audio.resample`) for other rates and layouts.
"""

from __future__ import annotations

import asyncio
import os
import string
import struct
import uuid
import wave
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import structlog
from pydantic import Field, field_validator

from runner.audio.pcm import FloatArray, decode_pcm, float_to_pcm16, to_mono
from runner.audio.resample import AudioNormalizer, resample_array
from runner.frames import (
    AudioRawFrame,
    CancelFrame,
    EndFrame,
    Frame,
    FrameDirection,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from runner.processors.base import FrameProcessor, ProcessorParams
from runner.processors.builtin._source import AudioSource

log = structlog.get_logger("runner.processors.builtin")

#: What a recorder's ``path`` may contain in braces.
PATH_PLACEHOLDERS = ("session_id", "date", "time")
#: Most ``-N`` suffixes tried to find a file name that does not exist yet.
MAX_NAME_TRIES = 1000


def check_path_template(template: str) -> str:
    """``template`` if its placeholders are all known; otherwise a ValueError naming the bad one."""
    known = ", ".join("{" + name + "}" for name in PATH_PLACEHOLDERS)
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"bad path template {template!r}: {exc} (write {{{{ or }}}} for a literal brace)") from None
    for name, spec, conv in fields:
        if name not in PATH_PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{name}}} in path {template!r}; known: {known}")
        if spec or conv:
            raise ValueError(f"placeholder {{{name}}} in path {template!r} takes no format or conversion")
    return template


def render_path(template: Path, session_id: str, now: datetime) -> Path:
    """Fill a checked path template (``{date}`` is YYYY-MM-DD and ``{time}`` HHMMSS, both UTC)."""
    text = str(template).format(session_id=session_id, date=now.strftime("%Y-%m-%d"), time=now.strftime("%H%M%S"))
    return Path(text)


def wav_header(sample_rate: int, num_channels: int, data_bytes: int) -> bytes:
    """The 44-byte header of a 16-bit PCM WAV file holding ``data_bytes`` of samples."""
    block = 2 * num_channels
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        *(b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, num_channels),
        *(sample_rate, sample_rate * block, block, 16, b"data", data_bytes),
    )


class _WavFile:
    """One WAV file being written; every method blocks on disk and runs on a worker thread.

    After every :meth:`write` the header's sizes match the data on disk, so the file is
    valid whenever the process stops; a failed write is cut back to the last good size.
    """

    def __init__(self, wanted: Path, sample_rate: int, num_channels: int) -> None:
        wanted.parent.mkdir(parents=True, exist_ok=True)
        self.sample_rate, self.num_channels = sample_rate, num_channels
        self.path, self._fd = self._create(wanted)
        self.data_bytes = 0
        try:
            self._put(wav_header(sample_rate, num_channels, 0), 0)
        except BaseException:
            os.close(self._fd)
            raise

    @staticmethod
    def _create(wanted: Path) -> tuple[Path, int]:
        """Create ``wanted`` (or ``stem-1``, ``stem-2``, ... if taken) without replacing any file."""
        for n in range(MAX_NAME_TRIES):
            path = wanted if n == 0 else wanted.with_name(f"{wanted.stem}-{n}{wanted.suffix}")
            try:
                return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
        raise FileExistsError(f"{str(wanted)!r} and {MAX_NAME_TRIES - 1} numbered variants all exist")

    def _put(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written

    def write(self, audio: bytes) -> None:
        """Append samples and patch the header's sizes (on a failure, after what did fit)."""
        offset = 44 + self.data_bytes
        view = memoryview(audio)
        done = 0
        try:
            while done < len(audio):
                done += os.pwrite(self._fd, view[done:], offset + done)
        finally:
            kept = done - done % (2 * self.num_channels)  # whole sample frames only
            if kept != done:
                os.ftruncate(self._fd, offset + kept)
            if kept:
                self.data_bytes += kept
                self._put(wav_header(self.sample_rate, self.num_channels, self.data_bytes), 0)

    def close(self) -> None:
        """Close the file (its header is already final)."""
        os.close(self._fd)


class WavRecorder(FrameProcessor):
    """Writes the audio frames passing through to a 16-bit WAV file; passes every frame on.

    The path is a template (``{session_id}``, ``{date}``, ``{time}``), rendered at start; an
    existing file is never replaced (``-1``, ``-2``, ... is appended instead). Disk work runs
    on worker threads, never on the event loop: frames are queued (up to ``buffer_secs``) and
    written in batches, each leaving a valid header behind, and the file is finished on end,
    cancel, error or cleanup. Frames in another rate or channel count than the file's are
    converted.
    """

    class Params(ProcessorParams):
        """WAV recorder settings."""

        path: Path = Field(
            description=(
                "File to write; parent directories are created. Placeholders: {session_id}, "
                "{date} (YYYY-MM-DD, UTC) and {time} (HHMMSS, UTC); an existing file is never "
                "replaced (a -1, -2, ... suffix is added)."
            )
        )
        source: Literal["input", "output"] = Field(
            default="input",
            description="Record InputAudioRawFrame (the user) or OutputAudioRawFrame (the bot).",
        )
        sample_rate: int | None = Field(
            default=None,
            ge=8000,
            le=48000,
            description="File rate; null = the pipeline's input or output rate, after `source`.",
        )
        num_channels: Literal[1, 2] = Field(default=1, description="Channels in the file.")
        buffer_secs: float = Field(
            default=30.0,
            gt=0.0,
            le=600.0,
            description="Audio held in memory while the disk catches up; beyond it audio is dropped and counted.",
        )

        @field_validator("path")
        @classmethod
        def _known_placeholders(cls, value: Path) -> Path:
            check_path_template(str(value))
            return value

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if params is None:
            raise ValueError("WavRecorder needs params with a `path`")
        self.params = params
        self._frame_type: type[AudioRawFrame] = InputAudioRawFrame if params.source == "input" else OutputAudioRawFrame
        self._file: _WavFile | None = None
        self._normalizer: AudioNormalizer | None = None
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued_bytes = 0
        self._max_bytes = 0
        self._writer_task: asyncio.Task[None] | None = None
        self._finishing: asyncio.Task[None] | None = None
        self.sample_rate = 0
        self.frames_dropped = 0

    @property
    def frames_written(self) -> int:
        """Sample frames on disk so far."""
        return self._file.data_bytes // (2 * self.params.num_channels) if self._file is not None else 0

    @property
    def path(self) -> Path:
        """Where the recording goes (the rendered template once started)."""
        return self._file.path if self._file is not None else self.params.path

    async def start(self, frame: StartFrame) -> None:
        p = self.params
        default_rate = frame.audio_in_sample_rate if p.source == "input" else frame.audio_out_sample_rate
        self.sample_rate = p.sample_rate or default_rate
        session_id = frame.session_id or uuid.uuid4().hex[:12]
        wanted = render_path(p.path, session_id, datetime.now(UTC))
        try:
            self._file = await asyncio.to_thread(_WavFile, wanted, self.sample_rate, p.num_channels)
        except OSError as exc:
            raise OSError(f"cannot open WAV file {str(wanted)!r} for writing: {exc}") from exc
        self._normalizer = AudioNormalizer(self.sample_rate, p.num_channels, chunk_ms=None, align=False)
        self._max_bytes = int(p.buffer_secs * self.sample_rate) * 2 * p.num_channels
        self._writer_task = asyncio.get_running_loop().create_task(self._write_loop(), name=f"{self.name}-wav")
        log.debug("wav_recording", processor=self.name, path=str(self.path), sample_rate=self.sample_rate)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, self._frame_type) and self._normalizer is not None and self._finishing is None:
            for piece in self._normalizer.push_pcm(frame.audio, frame.sample_rate, frame.num_channels):
                self._enqueue(piece)
        await self.push_frame(frame, direction)

    def _enqueue(self, audio: bytes) -> None:
        if self._queued_bytes + len(audio) > self._max_bytes:
            if self.frames_dropped == 0:
                log.warning(
                    "wav_buffer_full", processor=self.name, path=str(self.path), buffer_secs=self.params.buffer_secs
                )
            self.frames_dropped += len(audio) // (2 * self.params.num_channels)
            return
        self._queued_bytes += len(audio)
        self._queue.put_nowait(audio)

    async def _write_loop(self) -> None:
        """Hand queued audio to a worker thread in batches until the end marker."""
        assert self._file is not None
        done = False
        while not done:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            done = batch[-1] is None
            audio = b"".join(piece for piece in batch if piece is not None)
            if not audio:
                continue
            self._queued_bytes -= len(audio)
            try:
                await asyncio.to_thread(self._file.write, audio)
            except Exception as exc:  # disk full, file gone, ...: the recording cannot go on
                self._normalizer = None  # stop queueing audio that can no longer be written
                log.error("wav_write_failed", processor=self.name, path=str(self.path), error=repr(exc))
                await self.push_error(f"cannot write WAV file {str(self.path)!r}: {exc}", fatal=True)
                return

    async def _finish(self) -> None:
        """Write what is queued, then the final header; once, whichever end comes first."""
        if self._finishing is None:
            self._finishing = asyncio.get_running_loop().create_task(self._close(), name=f"{self.name}-wav-close")
        # shielded: a second cancellation must not leave the file half-finished
        await asyncio.shield(self._finishing)

    async def _close(self) -> None:
        file, task = self._file, self._writer_task
        if file is None or task is None:
            return
        if self._normalizer is not None and not task.done():
            for piece in self._normalizer.flush():
                self._enqueue(piece)
        self._queue.put_nowait(None)
        await task
        try:
            await asyncio.to_thread(file.close)
        except OSError as exc:
            log.error("wav_close_failed", processor=self.name, path=str(file.path), error=str(exc))
            return
        log.info(
            "wav_recorded",
            processor=self.name,
            path=str(file.path),
            frames=self.frames_written,
            dropped=self.frames_dropped,
        )

    async def stop(self, frame: EndFrame) -> None:
        await self._finish()

    async def cancel(self, frame: CancelFrame) -> None:
        await self._finish()

    async def cleanup(self) -> None:
        await self._finish()
        await super().cleanup()


def read_wav(path: Path, sample_rate: int) -> FloatArray:
    """Read a whole WAV file as mono float32 at ``sample_rate``; errors name the path."""
    try:
        with wave.open(str(path), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            raw = reader.readframes(reader.getnframes())
        samples = decode_pcm(raw, width, channels)
    except FileNotFoundError:
        raise FileNotFoundError(f"WAV file not found: {str(path)!r}") from None
    except (OSError, EOFError, wave.Error, ValueError) as exc:
        raise ValueError(f"cannot read WAV file {str(path)!r}: {exc}") from exc
    return resample_array(to_mono(samples), rate, sample_rate)


class WavPlayer(AudioSource):
    """Plays a WAV file as 20 ms ``OutputAudioRawFrame`` chunks, mono 16-bit at the pipeline's output rate.

    The file is read and converted at start, so a missing or unreadable file fails the
    pipeline right away with a message naming the path.
    """

    class Params(ProcessorParams):
        """WAV player settings."""

        path: Path = Field(description="WAV file to play (integer PCM, any rate and channel count).")
        loop: bool = Field(default=False, description="Start again at the end of the file, forever.")
        realtime: bool = Field(default=True, description="Pace chunks in real time; false = as fast as possible.")
        start_on: Literal["start", "first_input"] = Field(
            default="start",
            description="Play when the pipeline starts, or when the first input audio frame arrives.",
        )
        end_when_done: bool = Field(default=False, description="Ask the pipeline to end when the file has played.")

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if params is None:
            raise ValueError("WavPlayer needs params with a `path`")
        self.params = params
        self._pcm = b""
        self._position = 0

    async def start(self, frame: StartFrame) -> None:
        p = self.params
        self.source_sample_rate = frame.audio_out_sample_rate
        self.chunk_samples = max(1, self.source_sample_rate // 50)
        self.realtime = p.realtime
        self.end_when_done = p.end_when_done and not p.loop
        self.start_immediately = p.start_on == "start"
        samples = read_wav(p.path, self.source_sample_rate)
        self._pcm = float_to_pcm16(samples)
        self._position = 0
        log.debug("wav_loaded", processor=self.name, path=str(p.path), secs=len(samples) / self.source_sample_rate)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and self.params.start_on == "first_input" and self.start_frame:
            self.start_source()

    def next_chunk(self) -> bytes | None:
        """The next 20 ms of the file (the last chunk may be shorter), or None at the end."""
        size = self.chunk_samples * 2
        if not self._pcm:
            return None
        if self.params.loop:
            chunk = bytearray()
            while len(chunk) < size:
                piece = self._pcm[self._position : self._position + size - len(chunk)]
                chunk += piece
                self._position = (self._position + len(piece)) % len(self._pcm)
            return bytes(chunk)
        if self._position >= len(self._pcm):
            return None
        chunk_bytes = self._pcm[self._position : self._position + size]
        self._position += len(chunk_bytes)
        return chunk_bytes


__all__ = [
    "PATH_PLACEHOLDERS",
    "WavPlayer",
    "WavRecorder",
    "check_path_template",
    "read_wav",
    "render_path",
    "wav_header",
]
