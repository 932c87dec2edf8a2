"""Text helpers shared by responders and speech synthesisers."""

from __future__ import annotations

import re

# Terminal punctuation (plus closing quotes/brackets) followed by whitespace, or a newline.
_BOUNDARY = re.compile(r"[.!?\u2026;]+[\"'\u201d\u2019)\]]*\s+|\n+")
# At the very end of the text: terminal punctuation not right after a digit ("3." may be "3.14").
_TRAILING = re.compile(r"(?<!\d)[.!?\u2026]+[\"'\u201d\u2019)\]]*$")


def split_sentences(text: str, *, final: bool = False) -> tuple[list[str], str]:
    """Complete sentences at the front of ``text`` and the unfinished rest.

    For streamed text (a reply arriving token by token) the rest is kept for the next call;
    with ``final`` the rest is the last sentence and nothing is left over.
    """
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        piece = text[start : match.end()].strip()
        if piece:
            sentences.append(piece)
        start = match.end()
    rest = text[start:]
    if rest.strip() and (final or _TRAILING.search(rest.rstrip())):
        sentences.append(rest.strip())
        rest = ""
    return sentences, rest


__all__ = ["split_sentences"]
