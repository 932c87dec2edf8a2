"""Reply templates: JSON values whose strings may reference the request being answered.

=============================  ==================================================================
``$request``                   the whole request ``{t, d}``
``$request.t``                 its type (a string)
``$request.d``                 its data, whatever JSON it is
``$request.d.a.0.b``           a value inside the data: keys of objects, ``0``-based list indexes
``"n = {$request.d.count}"``   inside a longer string: the value as text (strings as they are,
                               anything else as compact JSON)
=============================  ==================================================================

A string that is exactly one reference becomes the referenced value with its type (a list stays a
list). Nothing is evaluated: a reference is a path, never an expression. Path segments are
letters, digits, ``_`` and ``-``. A path the spec can rule out (``$request.x``, ``$request.t.y``)
is a :class:`TemplateSyntaxError` when the spec loads; a path the request does not have is a
:class:`MissingPathError` when the reply is rendered. Other ``$`` strings ("$5", "$USD") are
literal, except near misses of ``$request`` ("$requst.d"), which are errors too.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Where something is inside a template value: keys and list indexes.
Loc = tuple[str | int, ...]

ROOT = "request"
_SEGMENT = r"[A-Za-z0-9_-]+"
_PATH = rf"(?:\.{_SEGMENT})*"
#: A whole-string reference, or a typo of one (any ``$word`` root).
_WHOLE = re.compile(rf"\$(?P<root>[A-Za-z_]\w*)(?P<path>{_PATH})")
#: ``{$...}`` inside a longer string: anything up to the closing brace is checked.
_EMBEDDED = re.compile(r"\{\s*\$(?P<body>[^{}]*?)\s*\}")
_EMBEDDED_BODY = re.compile(rf"(?P<root>[A-Za-z_]\w*)(?P<path>{_PATH})")
_FIELDS = ("t", "d")


def _close(word: str, choices: tuple[str, ...]) -> str | None:
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


class TemplateError(ValueError):
    """A template that cannot be used or rendered."""


class TemplateSyntaxError(TemplateError):
    """A reference the spec can rule out; ``loc`` is where it is inside the template value."""

    def __init__(self, loc: Loc, message: str) -> None:
        self.loc = loc
        super().__init__(message)


class MissingPathError(TemplateError):
    """The request has nothing at a referenced path."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"the request has no {path}")


@dataclass(frozen=True)
class Ref:
    """One reference: ``segments`` after ``request`` (``("d", "count")``)."""

    segments: tuple[str, ...]

    @property
    def text(self) -> str:
        return ".".join((ROOT, *self.segments))

    def resolve(self, request: Mapping[str, Any]) -> Any:
        """The value at this path; :class:`MissingPathError` naming the path when there is none."""
        value: Any = request
        for depth, segment in enumerate(self.segments):
            if isinstance(value, dict) and segment in value:
                value = value[segment]
            elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
                value = value[int(segment)]
            else:
                raise MissingPathError(".".join((ROOT, *self.segments[: depth + 1])))
        return value


@dataclass(frozen=True)
class Text:
    """A string with embedded references: literal ``parts`` alternate with refs."""

    parts: tuple[str | Ref, ...]

    def render(self, request: Mapping[str, Any]) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = part.resolve(request)
            out.append(value if isinstance(value, str) else json.dumps(value, separators=(",", ":")))
        return "".join(out)


class Template:
    """A compiled template; :meth:`render` fills it from one request."""

    def __init__(self, source: Any) -> None:
        self.source = source
        errors: list[TemplateSyntaxError] = []
        self._compiled = _compile(source, (), errors)
        if errors:
            raise errors[0]

    @staticmethod
    def problems(source: Any) -> list[TemplateSyntaxError]:
        """Every reference in ``source`` that the spec can rule out (empty when it compiles)."""
        errors: list[TemplateSyntaxError] = []
        _compile(source, (), errors)
        return errors

    @property
    def is_literal(self) -> bool:
        """True when the template references nothing."""
        return not _has_refs(self._compiled)

    def render(self, request: Mapping[str, Any]) -> Any:
        """The value for ``request`` (``{"t": ..., "d": ...}``); raises :class:`MissingPathError`."""
        return _render(self._compiled, request)


def _check(root: str, path: str, loc: Loc, shown: str) -> Ref:
    if root != ROOT:
        hint = f"; did you mean '${ROOT}'?" if _close(root, (ROOT,)) else f"; references start with ${ROOT}"
        raise TemplateSyntaxError(loc, f"unknown reference {shown!r}{hint}")
    segments = tuple(path.split(".")[1:]) if path else ()
    if segments and segments[0] not in _FIELDS:
        close = _close(segments[0], _FIELDS)
        hint = f"; did you mean {close!r}?" if close else " (a request has t, its type, and d, its data)"
        raise TemplateSyntaxError(loc, f"{shown!r}: the request has no {segments[0]!r}{hint}")
    if len(segments) > 1 and segments[0] == "t":
        raise TemplateSyntaxError(loc, f"{shown!r}: request.t is a string, it has no {segments[1]!r}")
    return Ref(segments)


def _compile_string(text: str, loc: Loc) -> str | Ref | Text:
    """Raises :class:`TemplateSyntaxError` at the first bad reference in ``text``."""
    whole = _WHOLE.fullmatch(text)
    if whole:
        root = whole["root"]
        if root == ROOT or _close(root, (ROOT,)):
            return _check(root, whole["path"], loc, text)
        return text  # "$5", "$USD": not a reference
    if "{" not in text or "$" not in text:
        return text
    parts: list[str | Ref] = []
    last = 0
    for found in _EMBEDDED.finditer(text):
        body = _EMBEDDED_BODY.fullmatch(found["body"])
        if body is None:
            raise TemplateSyntaxError(loc, f"{found[0]!r} is not a reference like {{${ROOT}.d.name}}")
        parts.extend([text[last : found.start()], _check(body["root"], body["path"], loc, found[0])])
        last = found.end()
    if not parts:
        return text
    parts.append(text[last:])
    return Text(tuple(p for p in parts if p != ""))


def _compile(value: Any, loc: Loc, errors: list[TemplateSyntaxError]) -> Any:
    if isinstance(value, str):
        try:
            return _compile_string(value, loc)
        except TemplateSyntaxError as exc:
            errors.append(exc)
            return value
    if isinstance(value, dict):
        return {key: _compile(item, (*loc, key), errors) for key, item in value.items()}
    if isinstance(value, list):
        return [_compile(item, (*loc, i), errors) for i, item in enumerate(value)]
    return value


def _has_refs(compiled: Any) -> bool:
    if isinstance(compiled, Ref | Text):
        return True
    if isinstance(compiled, dict):
        return any(_has_refs(v) for v in compiled.values())
    if isinstance(compiled, list):
        return any(_has_refs(v) for v in compiled)
    return False


def _render(compiled: Any, request: Mapping[str, Any]) -> Any:
    if isinstance(compiled, Ref):
        return compiled.resolve(request)
    if isinstance(compiled, Text):
        return compiled.render(request)
    if isinstance(compiled, dict):
        return {key: _render(item, request) for key, item in compiled.items()}
    if isinstance(compiled, list):
        return [_render(item, request) for item in compiled]
    return compiled


__all__ = ["MissingPathError", "Ref", "Template", "TemplateError", "TemplateSyntaxError"]
