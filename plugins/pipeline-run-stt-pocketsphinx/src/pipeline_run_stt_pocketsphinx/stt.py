"""``PocketsphinxSTT`` (``stt.pocketsphinx``): offline streaming speech recognition."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

import structlog
from runner.frames import (
    ControlFrame,
    EndFrame,
    Frame,
    FrameDirection,
    InputAudioRawFrame,
    StartFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    UtteranceTranscribedFrame,
)
from runner.processors.base import FrameProcessor

from pipeline_run_stt_pocketsphinx.params import PocketsphinxParams
from pipeline_run_stt_pocketsphinx.recognizer import Recognizer

log = structlog.get_logger("pipeline_run_stt_pocketsphinx")


@dataclass(slots=True)
class _Boundary(ControlFrame):
    """A VAD notice re-queued behind the audio that came before it (never leaves the processor)."""

    begin: bool


class PocketsphinxSTT(FrameProcessor):
    """Turns ``InputAudioRawFrame`` audio into final ``TranscriptionFrame`` text.

    Audio at any rate is resampled to 16 kHz mono. With a VAD in the transport the
    utterance runs from ``UserStartedSpeakingFrame`` (plus a little pre-roll) to
    ``UserStoppedSpeakingFrame``; without one, pocketsphinx's own endpointer decides.
    Each VAD utterance's transcript (if any) is followed by an ``UtteranceTranscribedFrame``,
    so the user-turn aggregator need not wait for more text.
    Decoding runs in a worker thread, fed from the processor's own queue, so the
    speaking notices are applied in order with the audio around them.
    """

    Params: ClassVar[type[PocketsphinxParams]] = PocketsphinxParams
    events: ClassVar[tuple[str, ...]] = ("on_transcription",)
    queue_size: ClassVar[int] = 500  # 10 s of 20 ms chunks

    params: PocketsphinxParams

    def __init__(self, params: PocketsphinxParams | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params if params is not None else self.Params()
        self._recognizer = Recognizer(self.params)

    async def start(self, frame: StartFrame) -> None:
        await asyncio.to_thread(self._recognizer.load)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is not FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
        elif isinstance(frame, InputAudioRawFrame):
            await asyncio.to_thread(self._recognizer.feed, frame.audio, frame.sample_rate, frame.num_channels)
            await self._emit()
            if self.params.audio_passthrough:
                await self.push_frame(frame, direction)
        elif isinstance(frame, UserStartedSpeakingFrame | UserStoppedSpeakingFrame):
            await self.push_frame(frame, direction)
            if self.params.endpointing != "pocketsphinx":
                await self.queue_frame(_Boundary(begin=isinstance(frame, UserStartedSpeakingFrame)))
        elif isinstance(frame, _Boundary):
            await self._boundary(frame.begin)
        elif isinstance(frame, EndFrame):
            await asyncio.to_thread(self._recognizer.flush)
            await self._emit()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _boundary(self, begin: bool) -> None:
        if begin:
            if not self._recognizer.uses_vad:
                log.debug("stt_endpointing_switched_to_vad", processor=self.name)
                await asyncio.to_thread(self._recognizer.use_vad)
            await asyncio.to_thread(self._recognizer.begin)
        else:
            # metrics: from the end of the utterance to its first text (ttfb) and to all of it
            self.start_ttfb_metrics()
            self.start_processing_metrics()
            await asyncio.to_thread(self._recognizer.finish)
            await self._emit()
            self.metrics.reset()  # an utterance without text measured nothing
            await self.push_frame(UtteranceTranscribedFrame())

    async def _emit(self) -> None:
        results = self._recognizer.take_results()
        if results:
            await self.stop_ttfb_metrics()
            await self.stop_processing_metrics()
        for text in results:
            log.debug("stt_transcription", processor=self.name, text=text)
            await self.push_frame(TranscriptionFrame(text=text, final=True))
            await self._call_event_handler("on_transcription", text)


__all__ = ["PocketsphinxSTT"]
