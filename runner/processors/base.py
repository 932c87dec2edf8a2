"""``FrameProcessor``: the unit every pipeline is made of.

Frames move by direct ``await``: a processor's :meth:`~FrameProcessor.push_frame`
calls the next processor's :meth:`~FrameProcessor.queue_frame`, which runs its
:meth:`~FrameProcessor.process_frame` there and then. A processor doing slow work sets
``queue_size`` and gets a task and bounded queue of its own (see
:mod:`runner.processors.queue`), so it never stalls the processors before it.

Lifecycle hooks (:meth:`start`, :meth:`stop`, :meth:`cancel`, :meth:`interrupted`,
:meth:`cleanup`) are called by the base class; subclasses override
:meth:`process_frame` without calling ``super()``.

Errors: an exception raised while handling a frame, or by a task started with
:meth:`~FrameProcessor.create_task`, is logged once (with the processor's name and the
traceback) and becomes a fatal :class:`~runner.frames.ErrorFrame` pushed upstream, which ends
the pipeline (the transport tells the client first). :meth:`~FrameProcessor.push_error`
reports a problem the processor handled itself, fatal or not. The error text is what the
client is told, so values of the processor's secret parameters are masked in it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, SecretBytes, SecretStr

from runner.events import EventEmitter
from runner.frames import (
    CancelFrame,
    DataFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    FrameDirection,
    InterruptionFrame,
    StartFrame,
    SystemFrame,
)
from runner.processors.metrics import MetricKind, ProcessorMetrics
from runner.processors.queue import FrameWorker, Overflow
from runner.tasks import TaskOwner

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Coroutine, Iterator

T = TypeVar("T")

DOWNSTREAM = FrameDirection.DOWNSTREAM
UPSTREAM = FrameDirection.UPSTREAM

log = structlog.get_logger("runner.processors")


class ProcessorParams(BaseModel):
    """Base of every plugin's ``Params`` model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class FrameProcessor(EventEmitter):
    """Receives frames, does its work, pushes frames on (either direction).

    Plugin processors declare a nested ``Params`` model (a :class:`ProcessorParams`)
    and are built as ``cls(params, name=<id from the spec>)``; ``events`` names the
    events the processor can fire, which specs may attach actions to.
    """

    Params: ClassVar[type[ProcessorParams]] = ProcessorParams
    events: ClassVar[tuple[str, ...]] = ()
    #: > 0 gives the processor its own task and a queue of that many frames.
    queue_size: ClassVar[int] = 0
    #: what a full queue does: make the sender wait, or drop its oldest data frame.
    queue_overflow: ClassVar[Overflow] = "block"
    #: data frames that wait in the queue; other data frames are handled on arrival
    #: (a slow video transform must not delay or drop the audio passing it).
    queued_frames: ClassVar[tuple[type[DataFrame], ...]] = (DataFrame,)

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__()
        for event in self.events:
            self._register_event_handler(event)
        self.name = name or type(self).__name__
        self._next: FrameProcessor | None = None
        self._prev: FrameProcessor | None = None
        self._worker: FrameWorker | None = None
        self._task_owner = TaskOwner(self.name, on_failure=self._task_failed)
        self._started = False
        self.start_frame: StartFrame | None = None
        self.metrics = ProcessorMetrics(self.name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @classmethod
    def from_params(cls, params: ProcessorParams, *, name: str | None = None) -> Self:
        """Build from validated spec parameters; plugins take ``(params, name=...)``."""
        factory: Callable[..., Self] = cls
        return factory(params, name=name)

    # ------------------------------------------------------------ wiring

    def link(self, downstream: FrameProcessor) -> None:
        """Make ``downstream`` the next processor."""
        self._next = downstream
        downstream._prev = self

    def processors(self) -> Iterator[FrameProcessor]:
        """This processor and, for containers, everything inside it."""
        yield self

    @property
    def next(self) -> FrameProcessor | None:
        return self._next

    @property
    def prev(self) -> FrameProcessor | None:
        return self._prev

    @property
    def audio_in_sample_rate(self) -> int:
        return self.start_frame.audio_in_sample_rate if self.start_frame else 16000

    @property
    def audio_out_sample_rate(self) -> int:
        return self.start_frame.audio_out_sample_rate if self.start_frame else 24000

    # ------------------------------------------------------------ frame entry

    async def queue_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        """Hand a frame to this processor (what neighbours call)."""
        if isinstance(frame, DataFrame):
            worker = self._worker
            if worker is None or not isinstance(frame, self.queued_frames):
                await self._dispatch(frame, direction)
            else:
                await worker.put(frame, direction)
        elif isinstance(frame, SystemFrame):
            await self._system_frame(frame, direction)
        else:
            worker = self._worker
            if worker is None:
                await self._control_frame(frame, direction)
            else:
                await worker.put(frame, direction)

    async def _system_frame(self, frame: SystemFrame, direction: FrameDirection) -> None:
        if isinstance(frame, StartFrame):
            if self._started:
                return
            self._started = True
            self.start_frame = frame
            if self.queue_size > 0:
                self._worker = FrameWorker(
                    self.name, self._control_or_data, self.queue_size, self.queue_overflow, tasks=self._task_owner
                )
                self._worker.start()
            try:
                await self.start(frame)
            except Exception as exc:
                await self._failed(exc, frame, direction)
                return
        elif isinstance(frame, CancelFrame):
            await self._stop_worker()
            await self._safe_hook(self.cancel(frame), frame, direction)
        elif isinstance(frame, InterruptionFrame):
            if self._worker is not None:
                await self._worker.interrupt()
            self.metrics.reset()
            await self._safe_hook(self.interrupted(), frame, direction)
        await self._dispatch(frame, direction)

    async def _control_or_data(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, DataFrame):
            await self._dispatch(frame, direction)
        else:
            await self._control_frame(frame, direction)

    async def _control_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, EndFrame) and direction is DOWNSTREAM:
            if not await self._safe_hook(self.stop(frame), frame, direction):
                return
            await self._dispatch(frame, direction)
            await self._stop_worker()
            return
        await self._dispatch(frame, direction)

    async def _dispatch(self, frame: Frame, direction: FrameDirection) -> None:
        try:
            await self.process_frame(frame, direction)
        except Exception as exc:
            await self._failed(exc, frame, direction)

    async def _safe_hook(self, hook: object, frame: Frame, direction: FrameDirection) -> bool:
        try:
            await hook  # type: ignore[misc]
        except Exception as exc:
            await self._failed(exc, frame, direction)
            return False
        return True

    async def _failed(self, exc: Exception, frame: Frame, direction: FrameDirection) -> None:
        text = self._error_text(f"{type(exc).__name__}: {exc}")
        log.error(
            "processor_failed",
            processor=self.name,
            processor_type=type(self).__name__,
            frame=frame.name,
            error=text,
            exc_info=exc,
        )
        await self.push_frame(ErrorFrame(error=text, processor=self.name, fatal=True, exception=exc), UPSTREAM)

    async def _task_failed(self, task_name: str, exc: Exception) -> None:
        # The task owner has logged it (task_failed): only report, so it is logged once.
        text = self._error_text(f"{type(exc).__name__}: {exc}")
        await self.push_frame(ErrorFrame(error=text, processor=self.name, fatal=True, exception=exc), UPSTREAM)

    def _error_text(self, text: str) -> str:
        """``text`` with the values of this processor's secret parameters masked."""
        secrets = secret_values(getattr(self, "params", None))
        # Repeat until none is left: a replacement can complete another occurrence ("xx***" for
        # "x***"); every pass shortens the text (secrets are longer than the mask), so this ends.
        while found := [secret for secret in secrets if secret in text]:
            for secret in found:
                text = text.replace(secret, "***")
        return text

    async def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop()

    # ------------------------------------------------------------ for subclasses

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Handle one frame. The default passes it on unchanged."""
        await self.push_frame(frame, direction)

    async def push_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        """Send a frame to the next processor in ``direction`` (dropped at the ends)."""
        target = self._next if direction is DOWNSTREAM else self._prev
        if target is not None:
            await target.queue_frame(frame, direction)

    async def push_error(self, error: str, *, fatal: bool = False, exception: BaseException | None = None) -> None:
        """Report a problem upstream (and to the client); a fatal one ends the pipeline.

        Logged here, once; pushing an ``ErrorFrame`` by hand skips the log and the masking.
        """
        text = self._error_text(error)
        (log.error if fatal else log.warning)(
            "processor_error", processor=self.name, error=text, fatal=fatal, exc_info=exception
        )
        await self.push_frame(ErrorFrame(error=text, processor=self.name, fatal=fatal, exception=exception), UPSTREAM)

    @property
    def metrics_enabled(self) -> bool:
        """True when the pipeline asked for metrics (``enable_metrics`` on its ``StartFrame``)."""
        return self.start_frame is not None and self.start_frame.enable_metrics

    def start_ttfb_metrics(self) -> None:
        """Work began: time until :meth:`stop_ttfb_metrics` (first output)."""
        self._start_metric("ttfb")

    async def stop_ttfb_metrics(self) -> None:
        """First output: push the time since :meth:`start_ttfb_metrics` (if it ran)."""
        await self._stop_metric("ttfb")

    def start_processing_metrics(self) -> None:
        """Work began: time until :meth:`stop_processing_metrics` (work done)."""
        self._start_metric("processing")

    async def stop_processing_metrics(self) -> None:
        """Work done: push the time since :meth:`start_processing_metrics` (if it ran)."""
        await self._stop_metric("processing")

    def _start_metric(self, kind: MetricKind) -> None:
        if self.metrics_enabled:
            self.metrics.start(kind)

    async def _stop_metric(self, kind: MetricKind) -> None:
        frame = self.metrics.stop(kind)
        if frame is not None:
            # downstream: the RTVI events processor before the output sends it to the client
            await self.push_frame(frame, DOWNSTREAM)

    def create_task(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T | None]:
        """Run ``coro`` in a task this processor owns.

        If it raises, the failure is logged (``task_failed``, with the session's context)
        and a fatal ``ErrorFrame`` goes upstream: the session ends instead of running on
        without that task. :meth:`cleanup` cancels whatever is still running.
        """
        return self._task_owner.spawn(coro, name=f"{self.name}-{name}")

    async def start(self, frame: StartFrame) -> None:
        """Called once when the pipeline starts, before the ``StartFrame`` moves on."""

    async def stop(self, frame: EndFrame) -> None:
        """Called when ``EndFrame`` arrives, after all data queued before it."""

    async def cancel(self, frame: CancelFrame) -> None:
        """Called when the pipeline is cancelled."""

    async def interrupted(self) -> None:
        """Called on an interruption, after this processor's queue was flushed."""

    async def cleanup(self) -> None:
        """Release resources; called once by the task after the pipeline has finished."""
        await self._stop_worker()
        await self._task_owner.cancel_all()
        await self._wait_event_handlers()


def secret_values(value: Any) -> list[str]:
    """Every non-trivial secret (``SecretStr``/``SecretBytes``) inside a params model, nested or not."""
    found: list[str] = []
    if isinstance(value, SecretStr):
        found.append(value.get_secret_value())
    elif isinstance(value, SecretBytes):
        found.append(value.get_secret_value().decode("utf-8", "replace"))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found.extend(secret_values(getattr(value, name, None)))
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(secret_values(item))
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            found.extend(secret_values(item))
    # longest first, so a secret that contains another is masked whole
    return sorted({secret for secret in found if len(secret) >= 4}, key=len, reverse=True)
