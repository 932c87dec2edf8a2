"""runner.text.split_sentences: what responders and TTS plugins cut streamed text with."""

from __future__ import annotations

import pytest

from runner.text import split_sentences


@pytest.mark.parametrize(
    ("text", "sentences", "rest"),
    [
        ("Hi there. How", ["Hi there."], "How"),
        ("One! Two? Three.", ["One!", "Two?", "Three."], ""),
        ("Pi is 3.", [], "Pi is 3."),  # maybe 3.14: wait for more
        ("Pi is 3.14 exactly. Or", ["Pi is 3.14 exactly."], "Or"),
        ("Line one\nLine two", ["Line one"], "Line two"),
        ('He said "stop." Then', ['He said "stop."'], "Then"),
        ("", [], ""),
    ],
)
def test_streamed_text_keeps_the_unfinished_rest(text: str, sentences: list[str], rest: str) -> None:
    assert split_sentences(text) == (sentences, rest)


def test_final_text_leaves_nothing_over() -> None:
    assert split_sentences("Hello. See you at 3", final=True) == (["Hello.", "See you at 3"], "")
    assert split_sentences("   ", final=True) == ([], "   ")
