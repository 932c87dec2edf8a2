"""The run_processor / assert_frames helper for plugin authors."""

from __future__ import annotations

import pytest

from runner.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    FrameDirection,
    InterruptionFrame,
    StartFrame,
    TextFrame,
    TTSSpeakFrame,
)
from runner.processors.base import FrameProcessor
from runner.testing import assert_frames, run_processor


class Upper(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame):
            frame = TextFrame(text=frame.text.upper())
        await self.push_frame(frame, direction)


class SwallowEnd(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if not isinstance(frame, EndFrame):
            await self.push_frame(frame, direction)


class Boom(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame):
            raise RuntimeError("boom")
        await self.push_frame(frame, direction)


class SeenStart(FrameProcessor):
    seen: StartFrame | None = None

    async def start(self, frame: StartFrame) -> None:
        type(self).seen = frame


class EndsItself(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await self.push_frame(EndFrame(reason="done"), FrameDirection.UPSTREAM)


async def test_collects_downstream_and_upstream() -> None:
    run = await run_processor(
        Upper(),
        [TextFrame("a"), (TextFrame("b"), FrameDirection.UPSTREAM), TextFrame("c")],
    )
    assert [f.text for f in run.of_type(TextFrame)] == ["A", "C"]
    assert [f.text for f in run.of_type(TextFrame, "up")] == ["B"]
    assert_frames(run.down, [TextFrame, TextFrame])
    assert run.error is None
    assert run.finish_reason == "run_processor finished"


async def test_swallowed_end_times_out_with_clear_error() -> None:
    with pytest.raises(AssertionError, match=r"did not finish within 0.3s.*EndFrame"):
        await run_processor(SwallowEnd(), [TextFrame("x")], timeout=0.3)


async def test_failure_is_reported_not_raised() -> None:
    run = await run_processor(Boom(), [TextFrame("x")])
    assert run.error is not None
    assert "boom" in run.error.error
    assert run.of_type(ErrorFrame, "up")


async def test_custom_start_frame_reaches_processor() -> None:
    start = StartFrame(audio_in_sample_rate=8000, audio_out_sample_rate=48000, metadata={"k": 1})
    await run_processor(SeenStart(), [], start_frame=start)
    assert SeenStart.seen is start


async def test_send_end_false_waits_for_processor_to_end() -> None:
    run = await run_processor(EndsItself(), [TextFrame("x")], send_end=False)
    assert run.finish_reason == "done"
    assert_frames(run.down, [TextFrame, EndFrame])


async def test_assert_frames_diff() -> None:
    assert_frames([TextFrame("a"), InterruptionFrame()], [TextFrame, InterruptionFrame])
    with pytest.raises(AssertionError) as info:
        assert_frames([TextFrame("a"), TextFrame("b")], [TextFrame, TTSSpeakFrame, EndFrame])
    message = str(info.value)
    assert "first at #1" in message
    assert "expected 3, got 2" in message
    assert "! " in message and "TTSSpeakFrame" in message
