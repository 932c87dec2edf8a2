"""``EspeakTTS`` (``tts.espeak``): offline text to speech with eSpeak NG, sentence by sentence."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

import structlog
from pydantic import Field
from runner.audio.resample import AudioNormalizer
from runner.frames import (
    EndFrame,
    FlushFrame,
    Frame,
    FrameDirection,
    LLMResponseEndFrame,
    OutputAudioRawFrame,
    StartFrame,
    TextFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from runner.processors.base import FrameProcessor, ProcessorParams
from runner.text import split_sentences

from pipeline_run_tts_espeak._espeak import EspeakEngine, EspeakError, Voice

log = structlog.get_logger("pipeline_run_tts_espeak")

CHUNK_MS = 20


class EspeakTTS(FrameProcessor):
    """Speaks ``TTSSpeakFrame`` text as is and ``TextFrame`` text once a sentence is complete.

    Each sentence becomes ``TTSStartedFrame``, 20 ms ``OutputAudioRawFrame`` chunks at the
    pipeline's output rate, the sentence as a ``TextFrame`` (for aggregators further on)
    and ``TTSStoppedFrame``. ``LLMResponseEndFrame``, ``FlushFrame`` and ``EndFrame`` speak
    whatever text is left before they pass on.
    An interruption drops pending sentences and aborts the one being synthesized.
    """

    class Params(ProcessorParams):
        """eSpeak NG voice settings."""

        voice: str = Field(default="en-us", min_length=1, description="eSpeak NG voice name, e.g. en-us, en-gb, de.")
        rate: int = Field(default=175, ge=80, le=500, description="Speaking rate in words per minute.")
        pitch: int = Field(default=50, ge=0, le=100, description="Base pitch, 0..100 (50 is normal).")
        volume: int = Field(default=100, ge=0, le=200, description="Volume, 0..200 (100 is normal).")

    queue_size: ClassVar[int] = 256

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params if params is not None else self.Params()
        self._voice = Voice(self.params.voice, self.params.rate, self.params.pitch, self.params.volume)
        self._engine: EspeakEngine | None = None
        self._text = ""
        self._generation = 0
        #: seconds from a sentence being ready to its first audio chunk, last sentence.
        self.last_time_to_first_audio: float | None = None

    async def start(self, frame: StartFrame) -> None:
        engine = await asyncio.to_thread(EspeakEngine.shared)
        if not await asyncio.to_thread(engine.check_voice, self._voice.name):
            raise EspeakError(f"unknown eSpeak voice {self._voice.name!r}")
        self._engine = engine

    async def interrupted(self) -> None:
        self._text = ""
        self._generation += 1  # aborts a synthesis in flight (checked by the audio callback)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is not FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSSpeakFrame):
            await self._flush_text()
            await self.speak(frame.text)
        elif isinstance(frame, TextFrame):
            self._text += frame.text
            sentences, self._text = split_sentences(self._text)
            for sentence in sentences:
                await self.speak(sentence)
        elif isinstance(frame, LLMResponseEndFrame | FlushFrame | EndFrame):
            await self._flush_text()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _flush_text(self) -> None:
        text, self._text = self._text.strip(), ""
        if text:
            await self.speak(text)

    async def synthesize(self, text: str) -> bytes:
        """PCM (16-bit mono) of ``text`` at the pipeline's output rate, or b"" if interrupted."""
        engine = self._engine
        if engine is None:
            engine = self._engine = await asyncio.to_thread(EspeakEngine.shared)
        generation = self._generation
        pcm = await asyncio.to_thread(engine.synthesize, text, self._voice, lambda: self._generation != generation)
        if self._generation != generation:
            return b""
        normalizer = AudioNormalizer(self.audio_out_sample_rate, 1, chunk_ms=None)
        return b"".join(normalizer.push_pcm(pcm, engine.sample_rate, 1) + normalizer.flush())

    async def speak(self, text: str) -> None:
        """Synthesize one piece of text and push its markers, audio and text."""
        text = text.strip()
        if not text:
            return
        began = time.perf_counter()
        generation = self._generation
        await self.push_frame(TTSStartedFrame())
        self.start_ttfb_metrics()
        self.start_processing_metrics()
        pcm = await self.synthesize(text)
        await self.stop_processing_metrics()
        rate = self.audio_out_sample_rate
        size = rate * CHUNK_MS // 1000 * 2
        first = True
        for offset in range(0, len(pcm), size):
            if self._generation != generation:
                return
            chunk = pcm[offset : offset + size]
            if len(chunk) < size:
                chunk += bytes(size - len(chunk))
            if first:
                self.last_time_to_first_audio = time.perf_counter() - began
                first = False
                await self.stop_ttfb_metrics()
            await self.push_frame(OutputAudioRawFrame(audio=chunk, sample_rate=rate, num_channels=1))
        if self._generation != generation:
            return
        self.metrics.reset()  # no audio at all: this piece measured no first byte
        await self.push_frame(TextFrame(text=text))
        await self.push_frame(TTSStoppedFrame())
        log.debug("tts_spoken", processor=self.name, chars=len(text), audio_secs=round(len(pcm) / 2 / rate, 3))


__all__ = ["EspeakTTS"]
