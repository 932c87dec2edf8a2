"""Search set-up helpers: phrase lists to JSGF, keyphrase files, grammar text or path."""

from __future__ import annotations

import re
from pathlib import Path

_NOT_WORD = re.compile(r"[^a-z' ]+")


def normalize_phrase(phrase: str) -> str:
    """Lower-case words separated by single spaces; punctuation dropped."""
    return " ".join(_NOT_WORD.sub(" ", phrase.lower()).split())


def phrases_to_jsgf(phrases: list[str], name: str = "phrases") -> str:
    """A JSGF grammar whose only sentences are ``phrases``."""
    alternatives = sorted({normalize_phrase(p) for p in phrases} - {""})
    if not alternatives:
        raise ValueError("phrases must contain at least one word")
    body = " | ".join(alternatives)
    return f"#JSGF V1.0;\ngrammar {name};\npublic <{name}> = {body};\n"


def jsgf_text(grammar: str) -> str:
    """``grammar`` itself when it is JSGF text, else the contents of the file it names."""
    if "#JSGF" in grammar or "public <" in grammar:
        return grammar
    path = Path(grammar).expanduser()
    if not path.is_file():
        raise ValueError(f"grammar is neither JSGF text nor an existing file: {grammar!r}")
    return path.read_text(encoding="utf-8")


def keyphrase_lines(keyphrases: list[str], threshold: float) -> str:
    """Contents of a pocketsphinx keyphrase file (``phrase /threshold/`` per line)."""
    lines = [f"{normalize_phrase(k)} /{threshold:g}/" for k in keyphrases if normalize_phrase(k)]
    if not lines:
        raise ValueError("keyphrases must contain at least one word")
    return "\n".join(lines) + "\n"


def words_of(text: str) -> set[str]:
    """The words of phrases or keyphrases (for dictionary checks)."""
    return set(normalize_phrase(text).split())


__all__ = ["jsgf_text", "keyphrase_lines", "normalize_phrase", "phrases_to_jsgf", "words_of"]
