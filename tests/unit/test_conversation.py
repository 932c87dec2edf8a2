"""Conversation mechanics: the context object, user turns, assistant turns, barge-in."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from runner.frames import (
    BotStartedSpeakingFrame,
    ContextFrame,
    EndFrame,
    Frame,
    FrameDirection,
    InterruptionFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    StartFrame,
    TextFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    UserTurnFrame,
    UtteranceTranscribedFrame,
)
from runner.pipeline import Pipeline, PipelineTask
from runner.plugins import PluginRegistry
from runner.processors.base import DOWNSTREAM, UPSTREAM, FrameProcessor
from runner.processors.conversation import (
    AssistantTurnAggregator,
    Conversation,
    UserTurnAggregator,
    conversation_pair,
)
from runner.testing import run_processor


class FakeResponder(FrameProcessor):
    """Answers each final transcription with ``reply`` (like llm.rules); remembers what it got."""

    queue_size: ClassVar[int] = 16

    def __init__(self, reply: str = "Okay.", *, end_after: int = 0) -> None:
        super().__init__(name="fake-responder")
        self.reply = reply
        self.heard: list[str] = []
        self.contexts: list[list[dict[str, str]]] = []
        self.end_after = end_after

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, ContextFrame):
            self.contexts.append(frame.messages)
            return
        await self.push_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame) and frame.final and direction is DOWNSTREAM:
            self.heard.append(frame.text)
            await self.push_frame(LLMResponseStartFrame())
            await self.push_frame(TextFrame(self.reply))
            await self.push_frame(LLMResponseEndFrame())
            if self.end_after and len(self.heard) >= self.end_after:
                await self.push_frame(EndFrame(reason="responder done"), UPSTREAM)


class SlowSpeaker(FrameProcessor):
    """A TTS stand-in: each TextFrame takes ``secs`` to 'speak', then its text goes on."""

    queue_size: ClassVar[int] = 16

    def __init__(self, secs: float) -> None:
        super().__init__(name="slow-speaker")
        self.secs = secs

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame) and direction is DOWNSTREAM:
            await asyncio.sleep(self.secs)
        await self.push_frame(frame, direction)


async def drive(processors: list[FrameProcessor], script: list[Frame | float]) -> None:
    """Run ``processors`` in a task, feeding ``script`` (floats are pauses), then end."""
    task = PipelineTask(Pipeline(processors))
    runner = asyncio.ensure_future(task.run())
    for item in script:
        if isinstance(item, float):
            await asyncio.sleep(item)
        else:
            await task.queue_frame(item)
    await task.queue_frame(EndFrame())
    await asyncio.wait_for(runner, 5)
    assert task.error is None


def user_params(**kw: object) -> UserTurnAggregator.Params:
    return UserTurnAggregator.Params.model_validate({"late_transcript_secs": 0.05, **kw})


# ---------------------------------------------------------------- the context object


def test_conversation_system_prompt_trim_and_merge() -> None:
    conv = Conversation("Be brief.", max_messages=3)
    conv.add_user("one")
    conv.append_assistant("a")
    conv.append_assistant("b")
    conv.add_user("two")  # commits the pending assistant text first
    conv.add_user("three")  # same role: merged
    assert conv.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "a b"},
        {"role": "user", "content": "two three"},
    ]
    conv.append_assistant("c")
    conv.commit_assistant()
    conv.add_user("four")
    roles = [m["role"] for m in conv.messages]
    assert roles == ["system", "user", "assistant", "user"]  # trimmed to 3, never led by the assistant
    assert conv.messages[1]["content"] == "two three"
    with pytest.raises(ValueError):
        conv.add_message("robot", "x")


# ---------------------------------------------------------------- user turns


async def test_two_transcripts_make_one_turn_and_one_responder_input() -> None:
    conv = Conversation("sys")
    user = UserTurnAggregator(user_params(), conversation=conv)
    responder = FakeResponder(end_after=1)
    frames: list[Frame] = [
        UserStartedSpeakingFrame(),
        TranscriptionFrame("hello", user_id="u1"),
        TranscriptionFrame("hel", final=False),
        TranscriptionFrame("there", user_id="u1"),
        UserStoppedSpeakingFrame(),
    ]
    run = await run_processor(Pipeline([user, responder]), frames, send_end=False)
    assert responder.heard == ["hello there"]
    turns = run.of_type(UserTurnFrame)
    assert len(turns) == 1 and turns[0].user_id == "u1" and turns[0].final
    assert [m for m in conv.messages if m["role"] == "user"] == [{"role": "user", "content": "hello there"}]
    assert responder.contexts == [[{"role": "system", "content": "sys"}, {"role": "user", "content": "hello there"}]]
    # raw transcripts (final and interim) stop at the aggregator
    assert all(isinstance(f, UserTurnFrame) for f in run.of_type(TranscriptionFrame))


async def test_late_transcript_joins_turn_within_grace_window() -> None:
    user = UserTurnAggregator(user_params(late_transcript_secs=0.1))
    responder = FakeResponder()
    script: list[Frame | float] = [
        UserStartedSpeakingFrame(),
        TranscriptionFrame("good"),
        UserStoppedSpeakingFrame(),
        0.03,
        TranscriptionFrame("morning"),  # the STT finished after the VAD
        0.2,
    ]
    await drive([user, responder], script)
    assert responder.heard == ["good morning"]
    assert user.turns == 1


async def test_transcript_after_grace_window_is_a_turn_by_itself() -> None:
    user = UserTurnAggregator(user_params(late_transcript_secs=0.02))
    responder = FakeResponder()
    script: list[Frame | float] = [
        UserStartedSpeakingFrame(),
        UserStoppedSpeakingFrame(),
        0.08,
        TranscriptionFrame("late"),
    ]
    await drive([user, responder], script)
    assert responder.heard == ["late"]


async def test_without_vad_a_final_transcript_is_a_turn() -> None:
    user = UserTurnAggregator(user_params())
    responder = FakeResponder()
    await drive([user, responder], [TranscriptionFrame("what time is it"), 0.02, TranscriptionFrame("thanks")])
    assert responder.heard == ["what time is it", "thanks"]
    assert [m["content"] for m in user.conversation.messages if m["role"] == "user"] == ["what time is it thanks"]
    # (consecutive user turns with no reply in the context between them are merged)


async def test_interim_transcripts_alone_make_no_turn() -> None:
    run = await run_processor(UserTurnAggregator(user_params()), [TranscriptionFrame("hm", final=False)])
    assert run.of_type(TranscriptionFrame) == [] and run.of_type(ContextFrame) == []


async def test_entry_points_resolve() -> None:
    registry = PluginRegistry.discover()
    assert registry.processor("conversation.user_turn") is UserTurnAggregator
    assert registry.processor("conversation.assistant_turn") is AssistantTurnAggregator


# ---------------------------------------------------------------- assistant turns


async def test_full_exchange_user_and_assistant_in_context() -> None:
    user = UserTurnAggregator(user_params(system_prompt="Be nice."))
    assistant = AssistantTurnAggregator()
    responder = FakeResponder("Hi. How are you?")
    await drive(
        [user, responder, assistant],
        [UserStartedSpeakingFrame(), TranscriptionFrame("hello"), UserStoppedSpeakingFrame(), 0.15],
    )
    # no explicit Conversation: both found the session's one through the StartFrame metadata
    assert user.conversation is assistant.conversation
    assert user.conversation.messages == [
        {"role": "system", "content": "Be nice."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hi. How are you?"},
    ]


async def test_sessions_do_not_share_a_conversation() -> None:
    first, second = AssistantTurnAggregator(), AssistantTurnAggregator()
    await run_processor(first, [TextFrame("one")])
    await run_processor(second, [TextFrame("two")])
    assert first.conversation is not second.conversation
    assert second.conversation.messages == [{"role": "assistant", "content": "two"}]


async def test_interruption_keeps_only_what_was_said() -> None:
    user, assistant = conversation_pair()
    speaker = SlowSpeaker(0.05)
    script: list[Frame | float] = [
        LLMResponseStartFrame(),
        TextFrame("First sentence."),
        TextFrame("Second sentence."),
        TextFrame("Third sentence."),
        LLMResponseEndFrame(),
        0.08,  # the first piece has been spoken, the second is under way
        UserStartedSpeakingFrame(),
        InterruptionFrame(),
        0.15,
    ]
    await drive([user, speaker, assistant], script)
    assert assistant.conversation.messages == [{"role": "assistant", "content": "First sentence."}]
    assert assistant.interruptions == 1


async def test_interrupted_marker_and_commit_on_user_turn() -> None:
    conv = Conversation()
    assistant = AssistantTurnAggregator(
        AssistantTurnAggregator.Params(interrupted_marker="(interrupted)"), conversation=conv
    )
    await run_processor(assistant, [TextFrame("Well, you see"), InterruptionFrame(), TextFrame("Sure.")])
    assert conv.messages == [{"role": "assistant", "content": "Well, you see (interrupted) Sure."}]


# ---------------------------------------------------------------- barge-in damping


async def test_min_words_holds_interruption_and_drops_short_turn() -> None:
    user = UserTurnAggregator(user_params(min_words=3))
    frames: list[Frame | tuple[Frame, FrameDirection]] = [
        (BotStartedSpeakingFrame(), UPSTREAM),
        UserStartedSpeakingFrame(),
        InterruptionFrame(),
        TranscriptionFrame("uh huh"),
        UserStoppedSpeakingFrame(),
    ]
    run = await run_processor(user, frames)
    assert run.of_type(InterruptionFrame) == []
    assert run.of_type(UserTurnFrame) == [] and user.dropped_turns == 1


async def test_min_words_releases_interruption_once_enough_words() -> None:
    user = UserTurnAggregator(user_params(min_words=3))
    frames: list[Frame | tuple[Frame, FrameDirection]] = [
        (BotStartedSpeakingFrame(), UPSTREAM),
        UserStartedSpeakingFrame(),
        InterruptionFrame(),
        TranscriptionFrame("wait stop", final=False),
        TranscriptionFrame("wait stop please"),
        UserStoppedSpeakingFrame(),
    ]
    run = await run_processor(user, frames)
    kinds = [type(f) for f in run.down if isinstance(f, InterruptionFrame | UserTurnFrame)]
    assert kinds == [InterruptionFrame, UserTurnFrame]
    assert run.of_type(UserTurnFrame)[0].text == "wait stop please"


async def test_interruption_passes_when_bot_is_quiet_and_can_be_generated() -> None:
    run = await run_processor(
        UserTurnAggregator(user_params(min_words=3)), [UserStartedSpeakingFrame(), InterruptionFrame()]
    )
    assert len(run.of_type(InterruptionFrame)) == 1
    gen = UserTurnAggregator(user_params(generate_interruptions=True))
    run = await run_processor(gen, [UserStartedSpeakingFrame()])
    assert len(run.of_type(InterruptionFrame)) == 1
    run = await run_processor(
        UserTurnAggregator(user_params(generate_interruptions=True)),
        [UserStartedSpeakingFrame()],
        start_frame=StartFrame(allow_interruptions=False),
    )
    assert run.of_type(InterruptionFrame) == []


# ---------------------------------------------------------------- utterances marked transcribed


async def test_utterance_mark_ends_the_turn_without_the_grace_window() -> None:
    # a 5 s window would still be open: "later" joins the turn unless the mark ended it
    user = UserTurnAggregator(user_params(late_transcript_secs=5.0))
    responder = FakeResponder()
    script: list[Frame | float] = [
        UserStartedSpeakingFrame(),
        0.01,
        UserStoppedSpeakingFrame(),
        0.01,
        TranscriptionFrame("hello"),
        UtteranceTranscribedFrame(),
        0.05,
        TranscriptionFrame("later"),
        0.05,
    ]
    await drive([user, responder], script)
    assert responder.heard == ["hello", "later"]
    assert user.turns == 2


async def test_without_the_mark_the_window_still_collects_late_text() -> None:
    user = UserTurnAggregator(user_params(late_transcript_secs=5.0))
    responder = FakeResponder()
    script: list[Frame | float] = [
        UserStartedSpeakingFrame(),
        0.01,
        UserStoppedSpeakingFrame(),
        0.01,
        TranscriptionFrame("hello"),
        0.05,
        TranscriptionFrame("later"),
        0.05,
    ]
    await drive([user, responder], script)  # the EndFrame closes the turn
    assert responder.heard == ["hello later"]


async def test_mark_of_an_earlier_utterance_does_not_close_a_later_one() -> None:
    user = UserTurnAggregator(user_params(late_transcript_secs=5.0))
    responder = FakeResponder()
    script: list[Frame | float] = [
        UserStartedSpeakingFrame(),
        0.01,
        UserStoppedSpeakingFrame(),  # utterance 1 ends ...
        0.01,
        UserStartedSpeakingFrame(),  # ... the user goes on before its text is in
        0.01,
        TranscriptionFrame("good"),
        UtteranceTranscribedFrame(),  # utterance 1 marked while the user speaks
        0.01,
        UserStoppedSpeakingFrame(),
        0.01,
        UserStartedSpeakingFrame(),
        0.01,
        UserStoppedSpeakingFrame(),  # utterances 2 and 3 stopped, neither marked yet
        0.01,
        UtteranceTranscribedFrame(),  # utterance 2: no text (a cough), utterance 3 still open
        0.05,
        TranscriptionFrame("morning"),
        UtteranceTranscribedFrame(),  # utterance 3: the last one, the turn ends here
        0.05,
        TranscriptionFrame("later"),
        0.05,
    ]
    await drive([user, responder], script)
    assert responder.heard == ["good morning", "later"]


async def test_utterance_marks_stop_at_the_aggregator() -> None:
    frames: list[Frame] = [
        UserStartedSpeakingFrame(),
        UserStoppedSpeakingFrame(),
        TranscriptionFrame("hi"),
        UtteranceTranscribedFrame(),
    ]
    run = await run_processor(UserTurnAggregator(user_params()), frames)
    assert [f.text for f in run.of_type(UserTurnFrame)] == ["hi"]
    assert not run.of_type(UtteranceTranscribedFrame)
