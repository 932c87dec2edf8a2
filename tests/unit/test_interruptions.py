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

USER_WORDS = {TranscriptionFrame, UserTurnFrame}
USER_MEDIA = {InputAudioRawFrame, InputImageRawFrame}
BOT_BOUND = {TextFrame, TTSSpeakFrame, ContextFrame, OutputAudioRawFrame, OutputImageRawFrame}
BOT_BOUND |= {OutputTransportMessageFrame}


def test_the_rule_in_frames_py() -> None:
    """Exactly the bot-bound data frames are dropped; the user's words are kept, the user's media finished."""
    classes = [c for c in vars(frames_module).values() if inspect.isclass(c) and issubclass(c, frames_module.Frame)]
    data = {c for c in classes if issubclass(c, DataFrame) and c not in (DataFrame,)}
    data -= {frames_module.AudioRawFrame, frames_module.ImageRawFrame}  # abstract media bases
    assert {c for c in data if c.on_interruption == "drop"} == BOT_BOUND
    assert {c for c in data if c.on_interruption == "keep"} == USER_WORDS
    assert {c for c in data if c.on_interruption == "finish"} == USER_MEDIA
    assert {c.on_interruption for c in classes if not issubclass(c, DataFrame)} == {"finish"}


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

    kept = [frame for frame in sent if frame.on_interruption != "drop"]
    first = sent[0]  # taken up before the interruption came: the one in progress
    # every user frame reached it, in order, once; the bot frame in progress (if any) before them
    assert stt.started == ([first] if first.on_interruption == "drop" else []) + kept
    # and all of them were finished, except a transcription whose reaction was under way
    assert stt.done == [f for f in kept if not (f is first and f.on_interruption == "keep")]
    after = sink.seen[sink.seen.index(next(f for f in sink.seen if isinstance(f, InterruptionFrame))) + 1 :]
    assert [f for f in after if isinstance(f, DataFrame)] == stt.done  # passed on, in order
    assert not [f for f in sink.seen if isinstance(f, DataFrame) and f.on_interruption == "drop"]  # no bot output
    assert queue.dropped == sum(f.on_interruption == "drop" for f in sent[1:])
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
@example(["heard", "heard", "text"])  # the reaction to words in progress stops; the next words wait
def test_an_interruption_keeps_every_user_frame_in_order(kinds: list[str]) -> None:
    asyncio.run(_interrupt_backlog(kinds))
