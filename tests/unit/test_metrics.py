"""Metrics timers (injected clock), the ``send-text`` parser, and typed text as a user turn."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from runner.frames import (
    BotStartedSpeakingFrame,
    ContextFrame,
    InputTransportMessageFrame,
    InterruptionFrame,
    MetricsFrame,
    StartFrame,
    UserTurnFrame,
)
from runner.processors.base import FrameProcessor
from runner.processors.conversation import UserTurnAggregator
from runner.processors.metrics import ProcessorMetrics
from runner.processors.rtvi.send_text import SendText, parse_send_text
from runner.testing import run_processor


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@given(st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), min_size=1, max_size=5))
def test_timer_measures_from_first_start_to_stop(steps: list[float]) -> None:
    clock = FakeClock()
    metrics = ProcessorMetrics("tts", clock=clock)
    metrics.start("ttfb")
    for step in steps:  # restarting a running timer keeps the first start
        clock.now += step
        metrics.start("ttfb")
    frame = metrics.stop("ttfb")
    assert frame == MetricsFrame(kind="ttfb", processor="tts", value=frame.value if frame else -1)
    assert frame is not None and abs(frame.value - sum(steps)) < 1e-6
    assert metrics.stop("ttfb") is None  # stopped once


def test_timers_are_independent_and_reset_forgets() -> None:
    clock = FakeClock()
    metrics = ProcessorMetrics("stt", clock=clock)
    assert metrics.stop("processing") is None  # never started
    metrics.start("processing")
    clock.now += 0.5
    metrics.start("ttfb")
    clock.now += 0.25
    ttfb, processing = metrics.stop("ttfb"), metrics.stop("processing")
    assert ttfb is not None and ttfb.value == 0.25
    assert processing is not None and processing.value == 0.75
    metrics.start("ttfb")
    metrics.reset()
    assert not metrics.running("ttfb") and metrics.stop("ttfb") is None


class Timed(FrameProcessor):
    async def process_frame(self, frame: Any, direction: Any) -> None:
        if isinstance(frame, UserTurnFrame):
            self.start_ttfb_metrics()
            await self.stop_ttfb_metrics()
        await self.push_frame(frame, direction)


async def test_processor_pushes_metrics_only_when_enabled() -> None:
    on = await run_processor(Timed(name="t"), [UserTurnFrame(text="x")], start_frame=StartFrame(enable_metrics=True))
    measured = [f for f in on.down if isinstance(f, MetricsFrame)]
    assert [(f.kind, f.processor) for f in measured] == [("ttfb", "t")]
    off = await run_processor(Timed(name="t"), [UserTurnFrame(text="x")])
    assert not [f for f in off.down if isinstance(f, MetricsFrame)]


_NOT_TEXT = st.one_of(st.integers(), st.floats(allow_nan=False), st.lists(st.integers()), st.none())
_BAD_VALUES = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(), st.lists(st.integers()), st.none())


@given(content=st.text(), run=st.booleans(), audio=st.booleans())
def test_good_send_text_parses(content: str, run: bool, audio: bool) -> None:
    parsed = parse_send_text({"content": content, "options": {"run_immediately": run, "audio_response": audio}})
    assert parsed == SendText(content=content, run_immediately=run, audio_response=audio)


@given(data=st.one_of(_BAD_VALUES, st.fixed_dictionaries({"content": _NOT_TEXT})))
@example(data=None)
@example(data={"content": 3})
@example(data={"content": "hi", "options": []})
@example(data={"content": "hi", "options": {"run_immediately": "yes"}})
def test_malformed_send_text_gives_a_reason(data: Any) -> None:
    parsed = parse_send_text(data)
    assert isinstance(parsed, str) and parsed.startswith("send-text")


def _send_text(content: str, **options: Any) -> InputTransportMessageFrame:
    message = {"label": "rtvi-ai", "type": "send-text", "id": "1", "data": {"content": content, "options": options}}
    return InputTransportMessageFrame(message=message)


async def test_typed_text_is_a_turn_kept_in_the_context() -> None:
    run = await run_processor(UserTurnAggregator(), [_send_text("what is your name")])
    turns = [f.text for f in run.down if isinstance(f, UserTurnFrame)]
    assert turns == ["what is your name"]
    contexts = [f.messages for f in run.down if isinstance(f, ContextFrame)]
    assert contexts[-1][-1] == {"role": "user", "content": "what is your name"}


async def test_text_not_run_immediately_joins_the_next_turn() -> None:
    frames = [_send_text("what is", run_immediately=False), _send_text("your name")]
    run = await run_processor(UserTurnAggregator(), frames)
    assert [f.text for f in run.down if isinstance(f, UserTurnFrame)] == ["what is your name"]


@given(min_words=st.integers(0, 10), run_immediately=st.booleans())
@example(min_words=5, run_immediately=True)
def test_typed_text_over_the_speaking_bot_interrupts_it_and_is_never_dropped(
    min_words: int, run_immediately: bool
) -> None:
    frames: list[Any] = [BotStartedSpeakingFrame(), _send_text("hi", run_immediately=run_immediately)]
    if not run_immediately:
        frames.append(_send_text("there"))
    aggregator = UserTurnAggregator(UserTurnAggregator.Params(min_words=min_words))
    run = asyncio.run(run_processor(aggregator, frames))
    kinds = [type(f) for f in run.down if isinstance(f, InterruptionFrame | UserTurnFrame)]
    assert kinds == [InterruptionFrame, UserTurnFrame]
    assert [f.text for f in run.down if isinstance(f, UserTurnFrame)] == ["hi" if run_immediately else "hi there"]
