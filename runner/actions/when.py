"""``when:`` conditions: choose an event's actions by the message that fired it.

``when`` holds up to three keys, all of which must match:

=================  =========================================================================
``type``           the message type, or a list of types (any of them): a ``client-message``'s
                   ``t``; for other events the ``type`` field of the message
``data``           a pattern for the payload: a ``client-message``'s ``d``; for other events
                   the ``data`` field of the message (the RTVI envelope's payload)
``message``        a pattern for the whole message: ``{t, d}`` for ``on_client_message``, the
                   JSON as received for ``on_app_message``, the first argument of other events
=================  =========================================================================

A pattern is JSON: an object matches an object that has those fields with matching values
(others are ignored; ``{}`` is any object); anything else must be equal (``1`` is not ``true``, lists are compared
whole). Two operators, written as an object of ``$`` keys: ``{$in: [a, b]}`` (equal to one of
them) and ``{$exists: false}`` (the field is absent; ``true``: present with any value).
Matching never raises: a value of the wrong shape simply does not match.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue

#: Where something is inside a ``when``: keys and list indexes.
Loc = tuple[str | int, ...]


class _Missing:
    """An absent field (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

#: Built-in events whose arguments are not messages (a connection, a frame, nothing).
NO_MESSAGE_EVENTS = frozenset(
    {
        "on_client_connected",
        "on_client_disconnected",
        "on_client_closed",
        "on_client_ready",
        "on_pipeline_started",
        "on_pipeline_error",
        "on_frame_reached_downstream",
    }
)
OPERATORS = ("$in", "$exists")


class WhenSpec(BaseModel):
    """The ``when:`` of an action: it runs only if every key given matches (first match wins)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    type: str | list[str] = Field(default=None, examples=["get-count", ["ping", "pong"]])  # type: ignore[assignment]
    """The message type (a client-message's `t`), or a list of types, any of which matches."""
    data: JsonValue = None
    """A pattern for the payload (a client-message's `d`, else the message's `data` field)."""
    message: JsonValue = None
    """A pattern for the whole message (`{t, d}` for on_client_message)."""


@dataclass(frozen=True)
class EventMessage:
    """What ``when`` looks at for one firing of an event; absent parts are :data:`MISSING`."""

    type: Any
    data: Any
    message: Any


def event_message(event: str, args: Sequence[Any]) -> EventMessage:
    """The message view of an event's arguments (``on_client_message``: ``t, d, request_id``)."""
    if event == "on_client_message" and len(args) >= 2:
        return EventMessage(type=args[0], data=args[1], message={"t": args[0], "d": args[1]})
    if not args:
        return EventMessage(MISSING, MISSING, MISSING)
    first = args[0]
    if isinstance(first, dict):
        return EventMessage(type=first.get("type", MISSING), data=first.get("data", MISSING), message=first)
    return EventMessage(MISSING, MISSING, first)


def json_equal(value: Any, expected: Any) -> bool:
    """``value == expected`` for JSON, without ``True == 1``; non-JSON values are never equal."""
    if isinstance(expected, bool) or expected is None:
        return type(value) is type(expected) and value == expected
    if isinstance(expected, int | float):
        return isinstance(value, int | float) and not isinstance(value, bool) and value == expected
    if isinstance(expected, str):
        return isinstance(value, str) and value == expected
    if isinstance(expected, list):
        return (
            isinstance(value, list)
            and len(value) == len(expected)
            and all(json_equal(v, e) for v, e in zip(value, expected, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(value, dict)
            and value.keys() == expected.keys()
            and all(json_equal(value[k], expected[k]) for k in expected)
        )
    return False


class Pattern:
    """A compiled pattern; :meth:`matches` is total (any value, :data:`MISSING` included)."""

    def matches(self, value: Any) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Equal(Pattern):
    expected: Any

    def matches(self, value: Any) -> bool:
        return value is not MISSING and json_equal(value, self.expected)


@dataclass(frozen=True)
class OneOf(Pattern):
    choices: tuple[Any, ...]

    def matches(self, value: Any) -> bool:
        return value is not MISSING and any(json_equal(value, c) for c in self.choices)


@dataclass(frozen=True)
class Exists(Pattern):
    present: bool

    def matches(self, value: Any) -> bool:
        return (value is not MISSING) == self.present


@dataclass(frozen=True)
class Fields(Pattern):
    fields: tuple[tuple[str, Pattern], ...]

    def matches(self, value: Any) -> bool:
        return isinstance(value, dict) and all(p.matches(value.get(k, MISSING)) for k, p in self.fields)


@dataclass
class PatternIssue:
    """A problem in a pattern; ``loc`` is relative to the ``when`` mapping."""

    loc: Loc
    message: str
    at_key: bool = False


def compile_pattern(value: Any, loc: Loc, issues: list[PatternIssue]) -> Pattern:
    """Compile the JSON ``value``; problems are appended to ``issues`` (the result then never matches)."""
    if not isinstance(value, dict):
        return Equal(value)
    operators = [k for k in value if isinstance(k, str) and k.startswith("$")]
    if not operators:
        return Fields(tuple((str(k), compile_pattern(v, (*loc, k), issues)) for k, v in value.items()))
    if len(operators) != len(value) or len(value) > 1:
        issues.append(PatternIssue(loc, f"an operator stands alone: write {{{operators[0]}: ...}} by itself"))
        return OneOf(())
    op, arg = operators[0], value[operators[0]]
    if op == "$in":
        if not isinstance(arg, list) or not arg:
            issues.append(PatternIssue((*loc, op), "$in takes a non-empty list of values"))
            return OneOf(())
        return OneOf(tuple(arg))
    if op == "$exists":
        if not isinstance(arg, bool):
            issues.append(PatternIssue((*loc, op), "$exists takes true or false"))
            return OneOf(())
        return Exists(arg)
    close = difflib.get_close_matches(op, OPERATORS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f" (operators: {', '.join(OPERATORS)})"
    issues.append(PatternIssue((*loc, op), f"unknown operator {op!r}{hint}", at_key=True))
    return OneOf(())


@dataclass(frozen=True)
class Condition:
    """A compiled ``when``: every pattern given must match the event's message."""

    type: Pattern | None = None
    data: Pattern | None = None
    message: Pattern | None = None
    #: the ``when`` as written (for rendering the resolved spec)
    source: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def never(cls, source: dict[str, Any]) -> Condition:
        """A condition that matches nothing (a ``when`` whose ``${VAR}`` was left unresolved)."""
        return cls(type=OneOf(()), source=source)

    def matches(self, message: EventMessage) -> bool:
        """True when the event's message satisfies every part of the condition."""
        return all(
            pattern is None or pattern.matches(value)
            for pattern, value in (
                (self.type, message.type),
                (self.data, message.data),
                (self.message, message.message),
            )
        )


def compile_when(spec: WhenSpec) -> tuple[Condition, list[PatternIssue]]:
    """The condition for a validated ``when`` and the problems in its patterns."""
    issues: list[PatternIssue] = []
    given = spec.model_fields_set
    if not given:
        issues.append(PatternIssue((), "an empty `when` matches nothing useful: give type, data or message"))
    type_pattern: Pattern | None = None
    if "type" in given:
        if isinstance(spec.type, str):
            type_pattern = Equal(spec.type)
        elif spec.type:
            type_pattern = OneOf(tuple(spec.type))
        else:
            issues.append(PatternIssue(("type",), "give a type, or a non-empty list of types"))
    data = compile_pattern(spec.data, ("data",), issues) if "data" in given else None
    message = compile_pattern(spec.message, ("message",), issues) if "message" in given else None
    source = spec.model_dump(include=given)
    return Condition(type=type_pattern, data=data, message=message, source=source), issues


__all__ = [
    "MISSING",
    "NO_MESSAGE_EVENTS",
    "Condition",
    "EventMessage",
    "Pattern",
    "PatternIssue",
    "WhenSpec",
    "compile_pattern",
    "compile_when",
    "event_message",
    "json_equal",
]
