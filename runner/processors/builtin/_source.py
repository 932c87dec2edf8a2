"""Shared machinery of the built-in audio sources: a task that pushes chunks, paced in real time."""

from __future__ import annotations

import asyncio
import time

import structlog

from runner.frames import CancelFrame, EndFrame, Frame, FrameDirection, OutputAudioRawFrame, StartFrame
from runner.processors.base import DOWNSTREAM, UPSTREAM, FrameProcessor
from runner.tasks import cancel_and_wait

log = structlog.get_logger("runner.processors.builtin")


class AudioSource(FrameProcessor):
    """Base of processors that generate :class:`OutputAudioRawFrame` chunks from a task of their own.

    Subclasses implement :meth:`next_chunk` and call :meth:`start_source` (by default
    right after the ``StartFrame`` has passed on). Chunks are pushed downstream at
    absolute deadlines ``t0 + n * chunk`` on ``time.monotonic`` so the rate never drifts.
    """

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._source_task: asyncio.Task[None | None] | None = None
        self._source_done = False
        #: output format; subclasses set these in ``start()``.
        self.source_sample_rate = 24000
        self.chunk_samples = 480
        self.realtime = True
        self.end_when_done = False
        self.start_immediately = True

    # ------------------------------------------------------------ for subclasses

    def next_chunk(self) -> bytes | None:
        """The next chunk of 16-bit mono PCM, or None when the source is exhausted."""
        raise NotImplementedError

    def start_source(self) -> None:
        """Start pushing audio (idempotent; does nothing once the source has run)."""
        if self._source_task is not None or self._source_done:
            return
        self._source_task = self.create_task(self._run_source(), name="source")

    @property
    def source_running(self) -> bool:
        """True while the source task is pushing audio."""
        return self._source_task is not None and not self._source_task.done()

    async def stop_source(self) -> None:
        """Stop pushing audio and wait for the task to finish."""
        task, self._source_task = self._source_task, None
        self._source_done = True
        await cancel_and_wait(task)

    # ------------------------------------------------------------ frame handling

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        # Only once the StartFrame has reached everything downstream may audio follow it.
        if isinstance(frame, StartFrame) and self.start_immediately:
            self.start_source()

    async def stop(self, frame: EndFrame) -> None:
        await self.stop_source()

    async def cancel(self, frame: CancelFrame) -> None:
        await self.stop_source()

    async def cleanup(self) -> None:
        await self.stop_source()
        await super().cleanup()

    # ------------------------------------------------------------ internals

    async def _run_source(self) -> None:
        started = time.monotonic()
        sent = 0
        pushed_samples = 0
        # A failure here is the task owner's: logged once, then a fatal error ends the session.
        while True:
            chunk = self.next_chunk()
            if chunk is None:
                break
            frame = OutputAudioRawFrame(audio=chunk, sample_rate=self.source_sample_rate, num_channels=1)
            await self.push_frame(frame, DOWNSTREAM)
            sent += 1
            pushed_samples += len(chunk) // 2
            if self.realtime:
                delay = started + pushed_samples / self.source_sample_rate - time.monotonic()
                await asyncio.sleep(max(0.0, delay))
            else:
                await asyncio.sleep(0)  # let the rest of the loop breathe
        log.debug("audio_source_done", processor=self.name, chunks=sent)
        if self.end_when_done:
            await self.push_frame(EndFrame(reason=f"{self.name} finished"), UPSTREAM)
