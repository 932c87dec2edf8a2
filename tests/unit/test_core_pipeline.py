"""The core: processors, worker queues, pipelines and the task's lifecycle."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import structlog

from runner.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    FrameDirection,
    InterruptionFrame,
    StartFrame,
    TextFrame,
    UserStartedSpeakingFrame,
)
from runner.pipeline import Pipeline, PipelineParams, PipelineTask
from runner.processors.base import DOWNSTREAM, UPSTREAM, FrameProcessor
from runner.processors.queue import FrameQueue
from runner.testing import run_processor

DATA = (TextFrame,)


class Recorder(FrameProcessor):
    """Records (frame, direction) and passes everything on."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.seen: list[tuple[Frame, FrameDirection]] = []
        self.cleanups = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        self.seen.append((frame, direction))
        await self.push_frame(frame, direction)

    def texts(self, direction: FrameDirection = DOWNSTREAM) -> list[str]:
        return [f.text for f, d in self.seen if isinstance(f, TextFrame) and d is direction]

    def kinds(self) -> list[str]:
        return [f.name for f, _ in self.seen]

    async def cleanup(self) -> None:
        self.cleanups += 1
        await super().cleanup()


class Gated(Recorder):
    """A queued processor whose data frames wait for ``gate``."""

    queue_size: ClassVar[int] = 10

    def __init__(self, name: str = "gated") -> None:
        super().__init__(name)
        self.gate = asyncio.Event()
        self.busy = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame):
            self.busy.set()
            await self.gate.wait()
        await super().process_frame(frame, direction)


class Raiser(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame) and frame.text == "boom":
            raise ValueError("bad text")
        await self.push_frame(frame, direction)


class Bouncer(FrameProcessor):
    """Sends every text back upstream with a suffix."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame) and direction is DOWNSTREAM:
            await self.push_frame(TextFrame(text=frame.text + "!"), UPSTREAM)
        await self.push_frame(frame, direction)


async def start_task(*processors: FrameProcessor, **params: float) -> tuple[PipelineTask, asyncio.Future[None]]:
    task = PipelineTask(Pipeline(list(processors)), params=PipelineParams(**params))  # type: ignore[arg-type]
    runner = asyncio.ensure_future(task.run())
    for _ in range(5):
        await asyncio.sleep(0)
    return task, runner


async def test_nested_pipelines_both_directions() -> None:
    a, b, c, d = Recorder("a"), Recorder("b"), Recorder("c"), Recorder("d")
    inner = Pipeline([b, Pipeline([c, Bouncer()], name="deep")], name="inner")
    task, runner = await start_task(a, inner, d)
    await task.queue_frames([TextFrame("x"), TextFrame("y")])
    await task.end()
    await asyncio.wait_for(runner, 2)
    for proc in (a, b, c, d):
        assert proc.texts() == ["x", "y"], proc.name
        assert proc.kinds()[0] == "StartFrame" and proc.kinds()[-1] == "EndFrame"
    for proc in (a, b, c):
        assert proc.texts(UPSTREAM) == ["x!", "y!"], proc.name
    assert d.texts(UPSTREAM) == []
    assert [p.name for p in task.pipeline.processors()] == ["a", "b", "c", "Bouncer", "d"]


async def test_system_frame_overtakes_queued_data() -> None:
    gated, after = Gated(), Recorder("after")
    task, runner = await start_task(gated, after)
    await task.queue_frames([TextFrame("1"), TextFrame("2")])
    await asyncio.wait_for(gated.busy.wait(), 1)
    await task.queue_frame(UserStartedSpeakingFrame())
    for _ in range(5):
        await asyncio.sleep(0)
    assert after.kinds() == ["StartFrame", "UserStartedSpeakingFrame"]
    gated.gate.set()
    await task.end()
    await asyncio.wait_for(runner, 2)
    assert after.kinds() == ["StartFrame", "UserStartedSpeakingFrame", "TextFrame", "TextFrame", "EndFrame"]


async def test_interruption_drops_queued_data_keeps_end() -> None:
    gated, after = Gated(), Recorder("after")
    task, runner = await start_task(gated, after)
    await task.queue_frames([TextFrame("1"), TextFrame("2"), TextFrame("3")])
    await asyncio.wait_for(gated.busy.wait(), 1)
    await task.end()  # queued behind the data
    for _ in range(5):
        await asyncio.sleep(0)
    assert gated._worker is not None
    assert len(gated._worker.queue) == 3  # "2", "3", EndFrame
    await gated.queue_frame(InterruptionFrame())
    gated.gate.set()
    await asyncio.wait_for(runner, 2)
    assert after.kinds() == ["StartFrame", "InterruptionFrame", "EndFrame"]
    assert task.finish_reason == "ended"


async def test_drop_oldest_overflow() -> None:
    queue = FrameQueue(2, "drop_oldest")
    end = EndFrame()
    await queue.put(end, DOWNSTREAM)
    for text in "abc":
        await queue.put(TextFrame(text), DOWNSTREAM)
    assert queue.dropped == 2
    items = [(await queue.get())[0] for _ in range(len(queue))]
    assert items[0] is end
    assert [f.text for f in items[1:] if isinstance(f, TextFrame)] == ["c"]


async def test_drop_oldest_processor_never_blocks_sender() -> None:
    class Lossy(Gated):
        queue_size: ClassVar[int] = 2
        queue_overflow = "drop_oldest"

    lossy, after = Lossy("lossy"), Recorder("after")
    task, runner = await start_task(lossy, after)
    await asyncio.wait_for(lossy.queue_frame(TextFrame("0")), 1)
    await asyncio.wait_for(lossy.busy.wait(), 1)
    for i in range(1, 6):  # must not block although the worker is stuck
        await asyncio.wait_for(lossy.queue_frame(TextFrame(str(i))), 1)
    lossy.gate.set()
    await task.end()
    await asyncio.wait_for(runner, 2)
    assert after.texts() == ["0", "4", "5"]


async def test_blocking_queue_applies_backpressure() -> None:
    class Small(Gated):
        queue_size: ClassVar[int] = 1

    small = Small("small")
    task, runner = await start_task(small)
    await small.queue_frame(TextFrame("0"))
    await asyncio.wait_for(small.busy.wait(), 1)
    await small.queue_frame(TextFrame("1"))  # fills the queue
    blocked = asyncio.ensure_future(small.queue_frame(TextFrame("2")))
    await asyncio.sleep(0.02)
    assert not blocked.done()
    small.gate.set()
    await asyncio.wait_for(blocked, 1)
    await task.end()
    await asyncio.wait_for(runner, 2)
    assert small.texts() == ["0", "1", "2"]


async def test_raising_processor_errors_upstream_and_ends_task() -> None:
    before, after = Recorder("before"), Recorder("after")
    raiser = Raiser(name="the-raiser")
    with structlog.testing.capture_logs() as logs:
        task, runner = await start_task(before, raiser, after)
        await task.queue_frames([TextFrame("ok"), TextFrame("boom"), TextFrame("never-ended")])
        await asyncio.wait_for(runner, 2)
    assert task.error is not None
    assert task.error.processor == "the-raiser"
    assert "ValueError: bad text" in task.error.error
    assert any(isinstance(f, ErrorFrame) and d is UPSTREAM for f, d in before.seen)
    assert not any(isinstance(f, ErrorFrame) for f, _ in after.seen)
    assert "the-raiser" in task.finish_reason
    failed = [entry for entry in logs if entry["event"] == "processor_failed"]
    assert failed and failed[0]["processor"] == "the-raiser"


async def test_failing_start_ends_task() -> None:
    class BadStart(FrameProcessor):
        async def start(self, frame: StartFrame) -> None:
            raise RuntimeError("no device")

    run = await run_processor(BadStart(name="bad"), [TextFrame("x")])
    assert run.error is not None and run.error.processor == "bad"


async def test_end_processes_everything_queued_first() -> None:
    gated, after = Gated(), Recorder("after")
    gated.gate.set()
    task, runner = await start_task(gated, after)
    await task.queue_frames([TextFrame(str(i)) for i in range(50)])
    await task.end()
    await asyncio.wait_for(runner, 2)
    assert after.texts() == [str(i) for i in range(50)]
    assert after.kinds()[-1] == "EndFrame"
    assert task.finish_reason == "ended" and task.error is None


async def test_cancel_stops_slow_processor_promptly() -> None:
    gated, after = Gated(), Recorder("after")
    task, runner = await start_task(gated, after)
    await task.queue_frames([TextFrame("1"), TextFrame("2")])
    await asyncio.wait_for(gated.busy.wait(), 1)
    await task.cancel("stop")
    await asyncio.wait_for(runner, 0.5)
    assert task.finish_reason == "stop"
    assert any(isinstance(f, CancelFrame) for f, _ in after.seen)
    assert after.texts() == []


async def test_swallowed_end_frame_times_out_into_cancel() -> None:
    class Swallow(FrameProcessor):
        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            if not isinstance(frame, EndFrame):
                await self.push_frame(frame, direction)

    task, runner = await start_task(Swallow(), end_timeout_secs=0.1)
    await task.end()
    await asyncio.wait_for(runner, 2)
    assert task.finish_reason == "end timed out"


async def test_cleanup_called_once_per_processor() -> None:
    procs = [Recorder("a"), Gated("b"), Recorder("c")]
    task, runner = await start_task(procs[0], Pipeline([procs[1], Pipeline([procs[2]])]))
    await task.end()
    await asyncio.wait_for(runner, 2)
    assert [p.cleanups for p in procs] == [1, 1, 1]


async def test_interruption_from_inside_worker_keeps_one_worker() -> None:
    """A downstream processor interrupting synchronously from within the worker's own call."""

    class Interrupter(FrameProcessor):
        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await self.push_frame(frame, direction)
            if isinstance(frame, TextFrame) and frame.text == "1":
                await self.push_frame(InterruptionFrame(), UPSTREAM)

    class Queued(Recorder):
        queue_size: ClassVar[int] = 10
        active = 0
        peak = 0

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            if not isinstance(frame, TextFrame):
                await super().process_frame(frame, direction)
                return
            type(self).active += 1
            type(self).peak = max(type(self).peak, type(self).active)
            try:
                await asyncio.sleep(0.001)
                await super().process_frame(frame, direction)
            finally:
                type(self).active -= 1

    queued, after = Queued("queued"), Recorder("after")
    task, runner = await start_task(queued, Interrupter(), after)
    await task.queue_frames([TextFrame(str(i)) for i in range(1, 6)])
    await asyncio.sleep(0.05)
    late = [f"late{i}" for i in range(5)]
    await task.queue_frames([TextFrame(text) for text in late])
    await task.end()
    await asyncio.wait_for(runner, 2)
    assert Queued.peak == 1, "two worker tasks ran the same processor at once"
    assert after.texts()[-5:] == late
