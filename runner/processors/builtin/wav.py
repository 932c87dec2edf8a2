"""WAV recording and playback: ``audio.wav_recorder`` and ``audio.wav_player``.

Both use the standard library's :mod:`wave` module (integer PCM only).
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Literal

import structlog
from pydantic import Field

from runner.audio.pcm import FloatArray, convert_pcm16, decode_pcm, float_to_pcm16, resample, to_mono
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


class WavRecorder(FrameProcessor):
    """Writes the audio frames passing through to a 16-bit WAV file; passes every frame on.

    The file is opened at start (parent directories are created), written frame by frame
    with a valid header after each write, and closed on end, cancel or cleanup. Frames in
    another rate or channel count than the file's are converted.
    """

    class Params(ProcessorParams):
        """WAV recorder settings."""

        path: Path = Field(description="File to write; parent directories are created.")
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

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if params is None:
            raise ValueError("WavRecorder needs params with a `path`")
        self.params = params
        self._frame_type: type[AudioRawFrame] = InputAudioRawFrame if params.source == "input" else OutputAudioRawFrame
        self._writer: wave.Wave_write | None = None
        self.sample_rate = 0
        self.frames_written = 0

    @property
    def path(self) -> Path:
        """Where the recording goes."""
        return self.params.path

    async def start(self, frame: StartFrame) -> None:
        p = self.params
        default_rate = frame.audio_in_sample_rate if p.source == "input" else frame.audio_out_sample_rate
        self.sample_rate = p.sample_rate or default_rate
        try:
            p.path.parent.mkdir(parents=True, exist_ok=True)
            writer = wave.open(str(p.path), "wb")  # closed in _close()
        except OSError as exc:
            raise OSError(f"cannot open WAV file {str(p.path)!r} for writing: {exc}") from exc
        writer.setnchannels(p.num_channels)
        writer.setsampwidth(2)
        writer.setframerate(self.sample_rate)
        self._writer = writer
        log.debug("wav_recording", processor=self.name, path=str(p.path), sample_rate=self.sample_rate)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, self._frame_type) and self._writer is not None:
            self._write(frame)
        await self.push_frame(frame, direction)

    def _write(self, frame: AudioRawFrame) -> None:
        assert self._writer is not None
        audio = convert_pcm16(
            frame.audio, frame.sample_rate, frame.num_channels, self.sample_rate, self.params.num_channels
        )
        # writeframes() patches the header after every write: the file stays playable.
        self._writer.writeframes(audio)
        self.frames_written += len(audio) // (2 * self.params.num_channels)

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except OSError as exc:
                log.error("wav_close_failed", processor=self.name, path=str(self.path), error=str(exc))
            log.debug("wav_recorded", processor=self.name, path=str(self.path), frames=self.frames_written)

    async def stop(self, frame: EndFrame) -> None:
        self._close()

    async def cancel(self, frame: CancelFrame) -> None:
        self._close()

    async def cleanup(self) -> None:
        self._close()
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
    return resample(to_mono(samples), rate, sample_rate)


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


__all__ = ["WavPlayer", "WavRecorder", "read_wav"]
