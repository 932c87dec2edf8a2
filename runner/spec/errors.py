"""Spec errors: every problem carries file, line, column and the path of the bad key."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: A location inside the spec: mapping keys and list indexes, from the root.
Loc = tuple[str | int, ...]


def format_path(loc: Sequence[str | int]) -> str:
    """``("processors", 2, "frequency")`` -> ``processors[2].frequency``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'port'?"`` when a choice is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True, order=True)
class SpecIssue:
    """One problem in a spec file; ``line``/``col`` are 1-based (0 when unknown)."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(ValueError):
    """A spec that cannot be used; ``issues`` lists every problem found, in file order."""

    def __init__(self, issues: Sequence[SpecIssue]) -> None:
        self.issues: list[SpecIssue] = sorted(set(issues), key=lambda i: (i.file, i.line, i.col, i.path, i.message))
        super().__init__("\n".join(str(i) for i in self.issues))

    @property
    def file(self) -> str | None:
        """The file the first issue is in."""
        return self.issues[0].file if self.issues else None
