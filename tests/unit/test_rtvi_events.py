"""RTVI events: frames become the exact server->client messages the Pipecat JS client shows."""

from __future__ import annotations

from typing import Any, ClassVar

from runner.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    FrameDirection,
    InterruptionFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    OutputTransportMessageFrame,
    TextFrame,
    TranscriptionFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    UserTurnFrame,
)
from runner.pipeline import Pipeline
from runner.plugins import PluginRegistry
from runner.processors.base import DOWNSTREAM, UPSTREAM, FrameProcessor
from runner.processors.conversation import UserTurnAggregator
from runner.processors.rtvi import RTVIEvents, RTVITap, install_rtvi_events
from runner.testing import FrameInput, run_processor


def messages(frames: list[Frame]) -> list[dict[str, Any]]:
    return [f.message for f in frames if isinstance(f, OutputTransportMessageFrame)]


def types(frames: list[Frame]) -> list[str]:
    return [m["type"] for m in messages(frames)]


async def events_for(frames: list[FrameInput], **params: Any) -> list[dict[str, Any]]:
    run = await run_processor(RTVIEvents(RTVIEvents.Params.model_validate(params)), frames)
    assert run.error is None
    return messages(run.down)


async def test_speaking_events_have_no_data() -> None:
    out = await events_for(
        [
            UserStartedSpeakingFrame(),
            UserStoppedSpeakingFrame(),
            (BotStartedSpeakingFrame(), UPSTREAM),
            (BotStoppedSpeakingFrame(), UPSTREAM),
        ]
    )
    assert out == [
        {"label": "rtvi-ai", "type": "user-started-speaking"},
        {"label": "rtvi-ai", "type": "user-stopped-speaking"},
        {"label": "rtvi-ai", "type": "bot-started-speaking"},
        {"label": "rtvi-ai", "type": "bot-stopped-speaking"},
    ]


async def test_user_transcription_final_and_interim() -> None:
    out = await events_for(
        [
            TranscriptionFrame("hel", user_id="pc-1", timestamp=0.0, final=False),
            TranscriptionFrame("hello", "pc-1", 1.5),
        ]
    )
    assert out == [
        {
            "label": "rtvi-ai",
            "type": "user-transcription",
            "data": {"text": "hel", "user_id": "pc-1", "timestamp": "1970-01-01T00:00:00.000+00:00", "final": False},
        },
        {
            "label": "rtvi-ai",
            "type": "user-transcription",
            "data": {"text": "hello", "user_id": "pc-1", "timestamp": "1970-01-01T00:00:01.500+00:00", "final": True},
        },
    ]
    assert await events_for([TranscriptionFrame("x", final=False)], interim_transcription=False) == []


async def test_user_turn_is_user_llm_text() -> None:
    out = await events_for([UserTurnFrame("hello there", user_id="u")])
    assert out == [{"label": "rtvi-ai", "type": "user-llm-text", "data": {"text": "hello there"}}]


async def test_llm_and_tts_events() -> None:
    out = await events_for(
        [
            LLMResponseStartFrame(),
            TextFrame("Hi there."),
            LLMResponseEndFrame(),
            TTSStartedFrame(),
            TextFrame("Hi there."),
            TTSStoppedFrame(),
        ]
    )
    assert out == [
        {"label": "rtvi-ai", "type": "bot-llm-started"},
        {"label": "rtvi-ai", "type": "bot-llm-text", "data": {"text": "Hi there."}},
        {"label": "rtvi-ai", "type": "bot-llm-stopped"},
        {"label": "rtvi-ai", "type": "bot-tts-started"},
        {"label": "rtvi-ai", "type": "bot-tts-text", "data": {"text": "Hi there."}},
        {
            "label": "rtvi-ai",
            "type": "bot-output",
            "data": {"text": "Hi there.", "spoken": True, "aggregated_by": "sentence"},
        },
        {"label": "rtvi-ai", "type": "bot-tts-stopped"},
    ]


async def test_text_frames_param_forces_the_kind() -> None:
    out = await events_for([TextFrame("spoken")], text_frames="tts", bot_tts=False)
    assert [m["type"] for m in out] == ["bot-output"]


async def test_bot_interrupted_only_while_the_bot_is_busy() -> None:
    assert await events_for([UserStartedSpeakingFrame(), InterruptionFrame()], user_speaking=False) == []
    out = await events_for([(BotStartedSpeakingFrame(), UPSTREAM), TTSStartedFrame(), InterruptionFrame()])
    assert [m["type"] for m in out] == ["bot-started-speaking", "bot-tts-started", "bot-interrupted", "bot-tts-stopped"]
    assert out[2] == {"label": "rtvi-ai", "type": "bot-interrupted"}


async def test_event_classes_can_be_switched_off() -> None:
    frames: list[FrameInput] = [
        UserStartedSpeakingFrame(),
        (BotStartedSpeakingFrame(), UPSTREAM),
        TranscriptionFrame("hi"),
        LLMResponseStartFrame(),
        TextFrame("yo"),
    ]
    off = dict(user_speaking=False, bot_speaking=False, user_transcription=False, bot_llm=False)
    assert await events_for(frames, **off) == []


async def test_entry_point_and_non_reported_frames_pass() -> None:
    assert PluginRegistry.discover().processor("rtvi.events") is RTVIEvents
    run = await run_processor(RTVIEvents(), [TextFrame("a"), UserStartedSpeakingFrame()])
    assert [type(f) for f in run.down if not isinstance(f, OutputTransportMessageFrame)] == [
        TextFrame,
        UserStartedSpeakingFrame,
    ]


class FakeResponder(FrameProcessor):
    """Like llm.rules: passes the transcription on, then answers it."""

    queue_size: ClassVar[int] = 8

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame) and frame.final and direction is DOWNSTREAM:
            await self.push_frame(LLMResponseStartFrame())
            await self.push_frame(TextFrame("Fine."))
            await self.push_frame(LLMResponseEndFrame())


class FakeTTS(FrameProcessor):
    """Consumes text; emits marker, text, marker (like tts.espeak without audio)."""

    queue_size: ClassVar[int] = 8

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame) and direction is DOWNSTREAM:
            await self.push_frame(TTSStartedFrame())
            await self.push_frame(TextFrame(frame.text))
            await self.push_frame(TTSStoppedFrame())
        else:
            await self.push_frame(frame, direction)


async def test_taps_report_each_frame_once_from_the_end() -> None:
    user = UserTurnAggregator(UserTurnAggregator.Params(late_transcript_secs=0.01))
    chain = install_rtvi_events([user, FakeResponder(), FakeTTS()])
    assert isinstance(chain[0], RTVITap) and isinstance(chain[-1], RTVIEvents)
    assert sum(isinstance(p, RTVITap) for p in chain) == 3
    frames: list[FrameInput] = [
        UserStartedSpeakingFrame(),
        TranscriptionFrame("how are", final=False),
        TranscriptionFrame("how are you"),
        UserStoppedSpeakingFrame(),
    ]
    run = await run_processor(Pipeline(chain), frames)
    assert run.error is None
    assert types(run.down) == [
        "user-started-speaking",
        "user-transcription",
        "user-transcription",
        "user-stopped-speaking",
        "user-llm-text",
        "bot-llm-started",
        "bot-llm-text",
        "bot-llm-stopped",
        "bot-tts-started",
        "bot-tts-text",
        "bot-output",
        "bot-tts-stopped",
    ]


async def test_install_uses_the_specs_instance_and_hides_held_interruptions() -> None:
    mine = RTVIEvents(RTVIEvents.Params(user_speaking=False), name="mine")
    user = UserTurnAggregator(UserTurnAggregator.Params(min_words=3))
    chain = install_rtvi_events([mine, user])
    assert chain[-1] is mine and chain.count(mine) == 1
    frames: list[FrameInput] = [
        (BotStartedSpeakingFrame(), UPSTREAM),
        UserStartedSpeakingFrame(),
        InterruptionFrame(),  # held by the aggregator: the bot goes on talking
        TranscriptionFrame("mm"),
    ]
    run = await run_processor(Pipeline(chain), frames)
    assert types(run.down) == ["bot-started-speaking", "user-transcription"]
