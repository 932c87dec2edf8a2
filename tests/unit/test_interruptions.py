"""An interruption drops what the bot was about to say, never what the user said."""

from __future__ import annotations

import asyncio
import inspect
from typing import ClassVar

from hypothesis import example, given, settings
from hypothesis import strategies as st

from runner import frames as frames_module
from runner.frames import (
    ContextFrame,
    DataFrame,
    Frame,
    FrameDirection,
    InputAudioRawFrame,
    InputImageRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    OutputTransportMessageFrame,
    TextFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    UserTurnFrame,
)
from runner.pipeline import Pipeline, PipelineTask
from runner.processors.base import DOWNSTREAM, FrameProcessor

USER_INPUT = {InputAudioRawFrame, InputImageRawFrame, TranscriptionFrame, UserTurnFrame}
BOT_BOUND = {TextFrame, TTSSpeakFrame, ContextFrame, OutputAudioRawFrame, OutputImageRawFrame}
BOT_BOUND |= {OutputTransportMessageFrame}


def test_the_rule_in_frames_py() -> None:
    """Of the data frames, exactly the bot-bound ones may be dropped; no other frame may."""
    classes = [c for c in vars(frames_module).values() if inspect.isclass(c) and issubclass(c, frames_module.Frame)]
    data = {c for c in classes if issubclass(c, DataFrame) and c not in (DataFrame,)}
    data -= {frames_module.AudioRawFrame, frames_module.ImageRawFrame}  # abstract media bases
    assert {c for c in data if c.interruptible} == BOT_BOUND
    assert {c for c in data if not c.interruptible} == USER_INPUT
    assert not [c for c in classes if not issubclass(c, DataFrame) and c.interruptible]


class SlowSTT(FrameProcessor):
    """A backlogged STT-like processor: each data frame waits for ``gate`` before it is done."""

    queue_size: ClassVar[int] = 100

    def __init__(self) -> None:
        super().__init__(name="stt")
        self.gate = asyncio.Event()
        self.busy = asyncio.Event()
        self.started: list[Frame] = []
        self.done: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, DataFrame) and direction is DOWNSTREAM:
            self.started.append(frame)
            self.busy.set()
            await self.gate.wait()
            self.done.append(frame)
        await self.push_frame(frame, direction)


class Sink(FrameProcessor):
    def __init__(self) -> None:
        super().__init__(name="sink")
        self.seen: list[Frame] = []
        self.got_interruption = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        self.seen.append(frame)
        if isinstance(frame, InterruptionFrame):
            self.got_interruption.set()
        await self.push_frame(frame, direction)


def _make(kind: str, index: int) -> Frame:
    payload = index.to_bytes(2, "little") * 160  # 10 ms at 16 kHz, numbered
    if kind == "mic":
        return InputAudioRawFrame(audio=payload, sample_rate=16000)
    if kind == "heard":
        return TranscriptionFrame(text=f"user said {index}")
    if kind == "camera":
        return InputImageRawFrame(image=b"\0" * 12, size=(2, 2), source="camera")
    if kind == "say":
        return TTSSpeakFrame(text=f"bot says {index}")
    if kind == "text":
        return TextFrame(text=f"reply {index}")
    return OutputAudioRawFrame(audio=payload, sample_rate=24000)


async def _interrupt_backlog(kinds: list[str]) -> None:
    stt, sink = SlowSTT(), Sink()
    task = PipelineTask(Pipeline([stt, sink]))
    sent = [_make(kind, i) for i, kind in enumerate(kinds)]
    runner = asyncio.ensure_future(task.run())
    await task.queue_frames(sent)
    await asyncio.wait_for(stt.busy.wait(), 10)  # the worker holds the first frame, the rest is queued
    assert stt._worker is not None
    queue = stt._worker.queue
    assert len(queue) == len(sent) - 1
    await task.queue_frame(InterruptionFrame())
    await asyncio.wait_for(sink.got_interruption.wait(), 10)  # overtook the backlog
    stt.gate.set()
    await task.end()
    await asyncio.wait_for(runner, 10)

    from_user = [frame for frame in sent if not frame.interruptible]
    assert stt.done == from_user  # every user frame, in order, none twice
    after = sink.seen[sink.seen.index(next(f for f in sink.seen if isinstance(f, InterruptionFrame))) + 1 :]
    assert [f for f in after if isinstance(f, DataFrame)] == from_user  # and passed on, in order
    assert not [f for f in sink.seen if isinstance(f, DataFrame) and f.interruptible]  # no bot output got out
    # the bot frames went: queued ones dropped, one in progress (if the first) abandoned
    abandoned = [f for f in stt.started if f not in stt.done]
    assert abandoned == ([sent[0]] if sent[0].interruptible else [])
    assert queue.dropped == sum(f.interruptible for f in sent[1:])
    assert task.error is None and task.finish_reason == "ended"


async def test_thirty_queued_mic_frames_survive_an_interruption_and_bot_output_does_not() -> None:
    kinds = []
    for i in range(30):
        kinds.append("mic")
        if i % 3 == 2:
            kinds.append(("say", "text", "audio")[i // 3 % 3])
    assert kinds.count("mic") == 30 and len(kinds) == 40
    await _interrupt_backlog(kinds)


KINDS = st.sampled_from(["mic", "heard", "camera", "say", "text", "audio"])


@settings(max_examples=60, deadline=None)
@given(st.lists(KINDS, min_size=1, max_size=40))
@example(["say", "mic", "mic"])  # a bot frame in progress is abandoned, the mic frames behind it are not
@example(["mic", "audio", "mic", "text"])  # a mic frame in progress is finished
def test_an_interruption_keeps_every_user_frame_in_order(kinds: list[str]) -> None:
    asyncio.run(_interrupt_backlog(kinds))
