"""Rule-based responder: matching, round-robin, placeholders, fallback, rules files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError
from runner.frames import (
    ContextFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    TextFrame,
    TranscriptionFrame,
    UserTurnFrame,
)
from runner.testing import assert_frames, run_processor

from pipeline_run_llm_rules import RulesParams, RulesResponder

RULES = [
    {"match": ["hello", "hi there"], "reply": ["Hello! How can I help?", "Hi again."]},
    {"match": r"my name is (?P<name>\w+)", "reply": "Nice to meet you, {name}."},
    {"match": r"\btime\b", "reply": "I do not have a clock. You said: {text}."},
]


def responder(**params: object) -> RulesResponder:
    return RulesResponder(RulesParams.model_validate({"rules": RULES, **params}))


def replies(run_down: Sequence[object]) -> list[str]:
    return [f.text.strip() for f in run_down if isinstance(f, TextFrame)]


async def test_keyword_match_replies_in_sentences_then_flush() -> None:
    run = await run_processor(responder(), [TranscriptionFrame("HELLO bot")])
    assert run.error is None
    assert_frames(run.down, [TranscriptionFrame, LLMResponseStartFrame, TextFrame, TextFrame, LLMResponseEndFrame])
    assert replies(run.down) == ["Hello!", "How can I help?"]


async def test_round_robin_and_case_insensitive() -> None:
    bot = responder()
    assert [bot.reply_for("hello"), bot.reply_for("Hi There"), bot.reply_for("hello")] == [
        "Hello! How can I help?",
        "Hi again.",
        "Hello! How can I help?",
    ]


def test_keywords_match_whole_words_only() -> None:
    bot = responder(fallback=None)
    assert bot.reply_for("othello is a play") is None
    assert bot.reply_for("what TIME is it") == "I do not have a clock. You said: what TIME is it."


def test_regex_groups_and_text_placeholder() -> None:
    assert responder().reply_for("well my name is Ada") == "Nice to meet you, Ada."


async def test_fallback_and_silence() -> None:
    run = await run_processor(responder(fallback="Say again: {text}?"), [TranscriptionFrame("blah")])
    assert replies(run.down) == ["Say again: blah?"]
    quiet = await run_processor(responder(fallback=None), [TranscriptionFrame("blah")])
    assert_frames(quiet.down, [TranscriptionFrame])


async def test_interim_and_other_frames_only_pass_through() -> None:
    frames = [TranscriptionFrame("hello", final=False), TextFrame("hello"), ContextFrame(messages=[])]
    run = await run_processor(responder(), frames)
    assert run.down == frames


async def test_user_turn_frames_are_answered() -> None:
    run = await run_processor(responder(), [UserTurnFrame("my name is Zed")])
    assert replies(run.down) == ["Nice to meet you, Zed."]


async def test_on_reply_event() -> None:
    bot = responder()
    seen: list[tuple[str, str]] = []
    bot.add_event_handler("on_reply", lambda _bot, text, reply: seen.append((text, reply)))
    await run_processor(bot, [TranscriptionFrame("my name is Bo")])
    assert seen == [("my name is Bo", "Nice to meet you, Bo.")]


def test_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {match: [weather], reply: It is sunny.}\nfallback: Pardon?\n")
    params = RulesParams.model_validate({"rules_file": str(path)})
    bot = RulesResponder(params)
    assert bot.reply_for("how is the weather") == "It is sunny."
    assert bot.reply_for("xyz") == "Pardon?"
    assert RulesParams.model_validate(params.model_dump()).rules == params.rules


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rules": [{"match": "(", "reply": "x"}]}, "invalid regular expression"),
        ({"rules": [{"match": [], "reply": "x"}]}, "keyword list is empty"),
        ({"rules": [{"match": "a", "reply": []}]}, "reply list is empty"),
        ({"rules_file": "/nonexistent/rules.yaml"}, "cannot read rules_file"),
        ({"rules": [{"match": "a", "reply": "b", "extra": 1}]}, "extra"),
    ],
)
def test_bad_params_are_clear(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RulesParams.model_validate(params)
