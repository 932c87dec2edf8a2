"""Drive one processor without a network: for plugin authors' tests.

    run = await run_processor(MyProcessor(), [TextFrame("hi")])
    assert_frames(run.down, [TextFrame])
    assert run.error is None

The processor runs inside a real :class:`~runner.pipeline.Pipeline` and
:class:`~runner.pipeline.PipelineTask`, so its lifecycle hooks, queue and error handling
behave exactly as in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import structlog

from runner.frames import EndFrame, ErrorFrame, Frame, FrameDirection, StartFrame
from runner.pipeline.pipeline import Pipeline
from runner.pipeline.task import PipelineParams, PipelineTask
from runner.processors.base import DOWNSTREAM, UPSTREAM, FrameProcessor

log = structlog.get_logger("runner.testing")

F = TypeVar("F", bound=Frame)
FrameInput = Frame | tuple[Frame, FrameDirection]


@dataclass
class ProcessorRun:
    """What came out of one :func:`run_processor` call.

    ``down`` holds the frames that left the processor downstream and ``up`` those it sent
    upstream, in order. The ``StartFrame`` and the helper's own closing ``EndFrame`` are
    left out of ``down``; everything else (errors, system frames) is kept.
    """

    down: list[Frame] = field(default_factory=list)
    up: list[Frame] = field(default_factory=list)
    error: ErrorFrame | None = None
    finish_reason: str = ""

    def of_type(self, cls: type[F], direction: Literal["down", "up"] = "down") -> list[F]:
        """The frames of ``cls`` (or a subclass) that went ``direction``."""
        frames = self.down if direction == "down" else self.up
        return [frame for frame in frames if isinstance(frame, cls)]


class _Collector(FrameProcessor):
    """Records frames travelling in one direction and passes everything on."""

    def __init__(self, name: str, record: FrameDirection, into: list[Frame], start: StartFrame | None = None) -> None:
        super().__init__(name=name)
        self._record = record
        self._into = into
        self._start = start
        self.ignore: set[int] = set()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, StartFrame):
            await self.push_frame(self._start or frame, direction)
            return
        if direction is self._record and id(frame) not in self.ignore:
            self._into.append(frame)
        await self.push_frame(frame, direction)


async def run_processor(
    processor: FrameProcessor,
    frames: Sequence[FrameInput] = (),
    *,
    send_end: bool = True,
    start_frame: StartFrame | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - a bounded run is the point of this helper
) -> ProcessorRun:
    """Run ``processor`` in a pipeline, feed it ``frames``, end and return what came out.

    Items of ``frames`` are frames sent downstream or ``(frame, FrameDirection.UPSTREAM)``
    pairs sent into the processor from below. They are pushed in order once the pipeline
    has started; then an ``EndFrame`` follows (unless ``send_end`` is false, in which case
    the processor is expected to end the pipeline itself). A run that is not over within
    ``timeout`` seconds is cancelled and raises :class:`AssertionError`. A processor that
    fails does not raise here: look at :attr:`ProcessorRun.error`.
    """
    result = ProcessorRun()
    start = start_frame or StartFrame()
    head = _Collector("testing::up", UPSTREAM, result.up, start=start_frame)
    tail = _Collector("testing::down", DOWNSTREAM, result.down)
    params = PipelineParams(
        audio_in_sample_rate=start.audio_in_sample_rate,
        audio_out_sample_rate=start.audio_out_sample_rate,
        allow_interruptions=start.allow_interruptions,
        end_timeout_secs=timeout + 60.0,  # our own timeout must fire first
    )
    task = PipelineTask(Pipeline([head, processor, tail], name="testing"), params=params)
    started = asyncio.Event()
    task.add_event_handler("on_pipeline_started", lambda _task: started.set())
    end_frame = EndFrame(reason="run_processor finished") if send_end else None
    if end_frame is not None:
        tail.ignore.add(id(end_frame))

    async def drive() -> None:
        runner = asyncio.ensure_future(task.run())
        try:
            started_wait = asyncio.ensure_future(started.wait())
            await asyncio.wait({runner, started_wait}, return_when=asyncio.FIRST_COMPLETED)
            started_wait.cancel()
            if started.is_set() and not task.has_finished:
                for item in frames:
                    frame, direction = item if isinstance(item, tuple) else (item, DOWNSTREAM)
                    if direction is DOWNSTREAM:
                        await head.push_frame(frame, DOWNSTREAM)
                    else:
                        await tail.push_frame(frame, UPSTREAM)
                if end_frame is not None:
                    await task.queue_frame(end_frame)
            await asyncio.shield(runner)
        except asyncio.CancelledError:
            await _cancel_run(task, runner)
            raise

    try:
        await asyncio.wait_for(drive(), timeout)
    except TimeoutError:
        raise AssertionError(_timeout_message(processor, timeout, send_end, result)) from None
    result.error = task.error
    result.finish_reason = task.finish_reason
    return result


async def _cancel_run(task: PipelineTask, runner: asyncio.Future[None]) -> None:
    await task.cancel("run_processor timed out")
    try:
        await asyncio.wait_for(asyncio.shield(runner), 2.0)
    except (TimeoutError, asyncio.CancelledError):
        runner.cancel()
    except Exception as exc:  # the timeout is the story told to the caller; keep this one in the log
        log.warning("run_processor_failed_after_timeout", error=f"{type(exc).__name__}: {exc}", exc_info=exc)


def _timeout_message(processor: FrameProcessor, timeout: float, send_end: bool, run: ProcessorRun) -> str:
    why = "did it swallow the EndFrame or block?" if send_end else "it was expected to end the pipeline itself"
    return (
        f"{processor!r} did not finish within {timeout:g}s ({why}); the run was cancelled.\n"
        f"  downstream so far: {_names(run.down)}\n  upstream so far: {_names(run.up)}"
    )


def _names(frames: Sequence[Frame]) -> str:
    if len(frames) > 20:
        return ", ".join(f.name for f in frames[:20]) + f", ... ({len(frames)} frames)"
    return ", ".join(f.name for f in frames) or "(none)"


def assert_frames(actual: Sequence[Frame], expected_types: Sequence[type[Frame]]) -> None:
    """Assert ``actual`` has exactly one frame per entry of ``expected_types``, each an instance of it.

    On a mismatch the error shows both lists side by side and marks the differing rows.
    """
    ok = len(actual) == len(expected_types) and all(
        isinstance(frame, cls) for frame, cls in zip(actual, expected_types, strict=False)
    )
    if ok:
        return
    rows = [f"  {'#':>3}  {'expected':<32} {'actual'}"]
    first_bad: int | None = None
    for index in range(max(len(actual), len(expected_types))):
        want = expected_types[index].__name__ if index < len(expected_types) else "-"
        got_frame = actual[index] if index < len(actual) else None
        got = _short(got_frame) if got_frame is not None else "-"
        good = got_frame is not None and index < len(expected_types) and isinstance(got_frame, expected_types[index])
        if not good and first_bad is None:
            first_bad = index
        rows.append(f"{' ' if good else '!'} {index:>3}  {want:<32} {got}")
    header = f"frames differ (first at #{first_bad}; expected {len(expected_types)}, got {len(actual)}):"
    raise AssertionError("\n".join([header, *rows]))


def _short(frame: Frame) -> str:
    text = repr(frame)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = ["FrameInput", "ProcessorRun", "assert_frames", "run_processor"]
