"""Cutting streamed text into sentences, so speech can start before the reply is complete."""

from __future__ import annotations

import re

# Terminal punctuation (plus closing quotes/brackets) followed by whitespace, or a newline.
_BOUNDARY = re.compile(r"[.!?\u2026;]+[\"'\u201d\u2019)\]]*\s+|\n+")
# At the very end of the buffer: terminal punctuation not right after a digit ("3." may be "3.14").
_TRAILING = re.compile(r"(?<!\d)[.!?\u2026]+[\"'\u201d\u2019)\]]*$")


def split_sentences(buffer: str) -> tuple[list[str], str]:
    """Complete sentences in ``buffer`` and the unfinished rest."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(buffer):
        piece = buffer[start : match.end()].strip()
        if piece:
            sentences.append(piece)
        start = match.end()
    rest = buffer[start:]
    if _TRAILING.search(rest.rstrip()) and rest.strip():
        sentences.append(rest.strip())
        rest = ""
    return sentences, rest


__all__ = ["split_sentences"]
