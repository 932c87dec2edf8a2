"""``PipelineTask`` runs one pipeline: start, feed frames, end gracefully or cancel.

Errors: an :class:`ErrorFrame` that reaches either end of the pipeline (processors push them
upstream, so it has passed the input transport, which told the client; one pushed downstream
has passed the output transport, which did the same) fires ``on_pipeline_error``; a fatal one
then cancels the pipeline. The task's own background work
(the feeder, deferred cancels) runs under a :class:`~runner.tasks.TaskOwner`: if it fails, the
failure is logged and turned into a fatal ``ErrorFrame`` sent up through the whole pipeline,
so it takes the same path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from runner.events import EventEmitter
from runner.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    FrameDirection,
    StartFrame,
)
from runner.processors.base import DOWNSTREAM, UPSTREAM, FrameProcessor
from runner.tasks import TaskOwner, cancel_and_wait

log = structlog.get_logger("runner.pipeline")


@dataclass(frozen=True, slots=True)
class PipelineParams:
    """Pipeline-wide settings carried to every processor by the ``StartFrame``."""

    audio_in_sample_rate: int = 16000
    audio_out_sample_rate: int = 24000
    allow_interruptions: bool = True
    #: how long a graceful ``end()`` may take before the task cancels instead.
    end_timeout_secs: float = 10.0
    #: the server session this run serves, handed to processors on the ``StartFrame``.
    session_id: str | None = None
    #: processors that time their work report it as ``MetricsFrame`` s.
    enable_metrics: bool = False


class _TaskEdge(FrameProcessor):
    """The task's own processors at both ends of the pipeline."""

    def __init__(self, task: PipelineTask, name: str) -> None:
        super().__init__(name=name)
        self._task = task

    async def queue_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        if self.next is not None and direction is DOWNSTREAM:
            await self.push_frame(frame, direction)  # the head: feed the pipeline
        elif self.prev is not None and direction is UPSTREAM:
            await self.push_frame(frame, direction)
        else:
            await self._task._frame_reached_end(frame, direction)


class PipelineTask(EventEmitter):
    """Runs a pipeline to completion.

    Events: ``on_pipeline_started``, ``on_pipeline_finished`` (with the reason),
    ``on_pipeline_error`` (with the :class:`ErrorFrame`), ``on_frame_reached_downstream``
    (with every frame that leaves the last processor).
    """

    events = (
        "on_pipeline_started",
        "on_pipeline_finished",
        "on_pipeline_error",
        "on_frame_reached_downstream",
    )

    def __init__(
        self,
        pipeline: FrameProcessor,
        *,
        params: PipelineParams | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        for event in self.events:
            self._register_event_handler(event)
        self.pipeline = pipeline
        self.params = params or PipelineParams()
        self.name = name or f"PipelineTask({pipeline.name})"
        self._head = _TaskEdge(self, "task::head")
        self._tail = _TaskEdge(self, "task::tail")
        self._head.link(pipeline)
        pipeline.link(self._tail)
        self._inbox: asyncio.Queue[Frame] = asyncio.Queue()
        self._finished = asyncio.Event()
        self._finish_reason = ""
        self._feeder: asyncio.Task[None] | None = None
        self._running = False
        self._cancelling = False
        self._background = TaskOwner(self.name, on_failure=self._background_failed)
        self.error: ErrorFrame | None = None

    @property
    def has_finished(self) -> bool:
        return self._finished.is_set()

    @property
    def finish_reason(self) -> str:
        return self._finish_reason

    # ------------------------------------------------------------ control

    async def queue_frame(self, frame: Frame) -> None:
        """Queue one frame for the pipeline (kept in order, fed after start)."""
        await self._inbox.put(frame)

    async def queue_frames(self, frames: Iterable[Frame]) -> None:
        """Queue several frames in order."""
        for frame in frames:
            await self._inbox.put(frame)

    async def end(self) -> None:
        """Finish gracefully: queued frames are processed, then everything stops."""
        await self.queue_frame(EndFrame())

    async def cancel(self, reason: str = "cancelled") -> None:
        """Stop now, dropping queued work."""
        if self._finished.is_set() or self._cancelling:
            return
        self._cancelling = True
        try:
            if self._feeder is not None and self._feeder is not asyncio.current_task():
                self._feeder.cancel()
            if self._running:
                await self._head.push_frame(CancelFrame(reason=reason), DOWNSTREAM)
        finally:
            self._finish(reason)  # even if a processor broke the CancelFrame's way: run() must return

    async def run(self) -> None:
        """Start the pipeline and return once it has ended, been cancelled or failed."""
        if self._running or self._finished.is_set():
            raise RuntimeError("a PipelineTask runs once")
        self._running = True
        structlog.contextvars.bind_contextvars(pipeline=self.name)
        try:
            start = StartFrame(
                audio_in_sample_rate=self.params.audio_in_sample_rate,
                audio_out_sample_rate=self.params.audio_out_sample_rate,
                allow_interruptions=self.params.allow_interruptions,
                session_id=self.params.session_id,
                enable_metrics=self.params.enable_metrics,
            )
            await self._head.push_frame(start, DOWNSTREAM)
            if not self._finished.is_set():
                await self._call_event_handler("on_pipeline_started")
                self._feeder = self._background.spawn(self._feed(), name=f"{self.name}-feed")
            await self._finished.wait()
        except asyncio.CancelledError:
            await asyncio.shield(self.cancel("task cancelled"))
            raise
        finally:
            await self._shutdown()

    # ------------------------------------------------------------ internals

    async def _feed(self) -> None:
        while True:
            frame = await self._inbox.get()
            await self._head.push_frame(frame, DOWNSTREAM)
            if isinstance(frame, EndFrame):
                await self._wait_end(frame)
                return

    async def _wait_end(self, frame: EndFrame) -> None:
        try:
            await asyncio.wait_for(self._finished.wait(), timeout=self.params.end_timeout_secs)
        except TimeoutError:
            log.warning("pipeline_end_timeout", timeout_secs=self.params.end_timeout_secs)
            await self.cancel("end timed out")

    async def _frame_reached_end(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is DOWNSTREAM:
            if isinstance(frame, EndFrame):
                self._finish(frame.reason or "ended")
            elif isinstance(frame, ErrorFrame):
                await self._handle_error(frame)  # pushed the wrong way, but an error all the same
            elif self.has_event_handlers("on_frame_reached_downstream"):
                await self._call_event_handler("on_frame_reached_downstream", frame)
            return
        if isinstance(frame, ErrorFrame):
            await self._handle_error(frame)
        elif isinstance(frame, EndFrame):
            # A processor asked for the end: send it down from the top, in order.
            await self.queue_frame(EndFrame(reason=frame.reason))
        elif isinstance(frame, CancelFrame):
            self._in_background(self.cancel(frame.reason or "cancelled"), "cancel")

    async def _handle_error(self, frame: ErrorFrame) -> None:
        # Not logged again: whoever made the frame logged it (push_error, a processor's or task's failure).
        await self._call_event_handler("on_pipeline_error", frame)
        if frame.fatal:
            self.error = self.error or frame
            # Not inline: we are inside the failing processor's call stack.
            self._in_background(self.cancel(f"error in {frame.processor}"), "cancel-on-error")

    def _in_background(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._background.spawn(coro, name=f"{self.name}-{name}")

    async def _background_failed(self, task_name: str, exc: Exception) -> None:
        """The task's own machinery failed (logged by the owner): end the run as a fatal error would."""
        error = ErrorFrame(error=f"pipeline error: {type(exc).__name__}", processor=self.name, exception=exc)
        if self._finished.is_set():
            self.error = self.error or error
            return
        try:
            # Up from the bottom, through every processor: the input transport tells the client.
            await self._tail.push_frame(error, UPSTREAM)
        finally:
            if not self._finished.is_set() and self.error is None:
                await self._handle_error(error)  # the frame did not get through: end the run anyway

    def _finish(self, reason: str) -> None:
        if not self._finished.is_set():
            self._finish_reason = reason
            self._finished.set()

    async def _shutdown(self) -> None:
        await cancel_and_wait(self._feeder)  # a failure of the feeder was logged by its owner
        for processor in self.pipeline.processors():
            try:
                await processor.cleanup()
            except Exception as exc:
                log.error(
                    "processor_cleanup_failed",
                    processor=processor.name,
                    error=f"{type(exc).__name__}: {exc}",
                    exc_info=exc,
                )
        await self._call_event_handler("on_pipeline_finished", self._finish_reason)
        await self._wait_event_handlers()
        await self._background.wait(self.params.end_timeout_secs)
        log.info("pipeline_finished", reason=self._finish_reason)
