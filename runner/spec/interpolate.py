"""``${VAR}`` interpolation in string values (the strict compose/Vector subset).

==================  ====================================================
``${VAR}``          the value of VAR; an error when VAR is unset
``${VAR:-text}``    ``text`` when VAR is unset or empty
``${VAR-text}``     ``text`` when VAR is unset
``${VAR:?message}`` an error with ``message`` when VAR is unset or empty
``${VAR?message}``  an error with ``message`` when VAR is unset
``$$``              a literal ``$``
==================  ====================================================

A bare ``$VAR`` is left alone (prices, regexes and SDP contain dollars); defaults are
taken literally (no nesting).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REF = re.compile(r"\$\{(?P<name>" + NAME + r")(?:(?P<op>:-|-|:\?|\?)(?P<arg>[^}]*))?\}")
#: A string that is one whole reference, as the JSON Schema accepts for typed fields.
REF_PATTERN = r"^\$\{" + NAME + r"((:?[-?])[^}]*)?\}$"


@dataclass(frozen=True)
class Problem:
    """Something wrong with one reference; ``offset`` is where it starts in the string."""

    offset: int
    name: str
    message: str


@dataclass
class Result:
    """The interpolated text and what went wrong on the way."""

    text: str
    problems: list[Problem] = field(default_factory=list)
    #: names left as ``${...}`` because ``skip_env`` was set
    unresolved: list[str] = field(default_factory=list)
    #: True when a substituted value contains a line break
    multiline: list[tuple[int, str]] = field(default_factory=list)


def has_reference(text: str) -> bool:
    """True when ``text`` contains ``${``."""
    return "${" in text


def interpolate(text: str, env: Mapping[str, str], *, skip_env: bool = False) -> Result:
    """Expand every reference in ``text`` from ``env``, collecting all problems."""
    if "$" not in text:
        return Result(text)
    out: list[str] = []
    result = Result("")
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != "$":
            j = text.find("$", i)
            j = n if j < 0 else j
            out.append(text[i:j])
            i = j
            continue
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if not text.startswith("${", i):
            out.append("$")
            i += 1
            continue
        match = _REF.match(text, i)
        if match is None:
            end = text.find("}", i)
            snippet = text[i : end + 1] if end >= 0 else text[i:]
            result.problems.append(
                Problem(i, "", f"invalid reference {snippet!r}: use ${{NAME}}, ${{NAME:-default}} or $$ for a '$'")
            )
            out.append(snippet)
            i += len(snippet)
            continue
        value = _resolve(match, env, result, skip_env)
        out.append(value)
        i = match.end()
    result.text = "".join(out)
    return result


def _resolve(match: re.Match[str], env: Mapping[str, str], result: Result, skip_env: bool) -> str:
    name, op, arg = match["name"], match["op"], match["arg"] or ""
    offset = match.start()
    current = env.get(name)
    empty = current is None or current == ""
    value: str | None
    if op is None:
        value = current
        message = f"environment variable {name} is not set"
    elif op == ":-":
        return arg if empty else _checked(current, offset, name, result)
    elif op == "-":
        return arg if current is None else _checked(current, offset, name, result)
    else:
        value = None if (empty if op == ":?" else current is None) else current
        message = f"{name}: {arg}" if arg else f"environment variable {name} is not set"
    if value is not None:
        return _checked(value, offset, name, result)
    if skip_env:
        result.unresolved.append(name)
        return match.group(0)
    result.problems.append(Problem(offset, name, message))
    return match.group(0)


def _checked(value: str | None, offset: int, name: str, result: Result) -> str:
    value = value or ""
    if "\n" in value or "\r" in value:
        result.multiline.append((offset, name))
    return value
