"""Reading spec YAML: a strict loader that keeps line:column marks for every value.

:class:`SpecLoader` is a ``SafeLoader`` (libyaml's when available) with YAML 1.2 core-schema
scalars: only ``true``/``false`` are booleans (``yes``, ``no``, ``on``, ``off`` stay
strings), integers are decimal, ``0o17`` or ``0x1f`` (a leading zero keeps ``0777`` a
string), no sexagesimal numbers and no timestamps. Duplicate keys are errors.

:func:`read_document` composes the node tree and builds plain Python data from it,
interpolating ``${VAR}`` in string scalars and recording every value's position.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from runner.spec.errors import Loc, format_path
from runner.spec.interpolate import interpolate

_Base: type[yaml.SafeLoader]
try:
    _Base = yaml.CSafeLoader  # type: ignore[assignment,unused-ignore]
except AttributeError:  # PyYAML built without libyaml
    _Base = yaml.SafeLoader

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"

_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9]+$")


def core_scalar(tag: str, text: str) -> Any:
    """The Python value of a resolved core-schema scalar (strings are returned as is)."""
    if tag == INT:
        if _LEADING_ZERO.match(text):
            return text
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)
    if tag == FLOAT:
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return -math.inf if lowered.startswith("-") else math.inf
        if lowered == ".nan":
            return math.nan
        return float(text)
    if tag == BOOL:
        return text.lower() == "true"
    if tag == NULL:
        return None
    return text


class SpecLoader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader with YAML 1.2 core-schema scalars and duplicate-key errors."""

    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                first = seen[key].start_mark
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first.line + 1}, column {first.column + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_core_scalar(self, node: yaml.ScalarNode) -> Any:
        return core_scalar(node.tag, self.construct_scalar(node))


for _tag, _regexp, _first in (
    (BOOL, _BOOL, "tTfF"),
    (INT, _INT, "-+0123456789"),
    (FLOAT, _FLOAT, "-+.0123456789"),
):
    SpecLoader.add_implicit_resolver(_tag, _regexp, list(_first))
SpecLoader.add_implicit_resolver(NULL, _NULL, ["~", "n", "N", ""])
for _tag in (INT, FLOAT, BOOL, NULL):
    SpecLoader.add_constructor(_tag, SpecLoader.construct_core_scalar)


@dataclass(frozen=True)
class Pos:
    """A 1-based line and column."""

    line: int
    col: int


@dataclass
class RawIssue:
    """A problem found while reading, before it is tied to a file name."""

    pos: Pos
    loc: Loc
    message: str


@dataclass
class Document:
    """Plain data from a spec file plus where each value came from."""

    data: Any
    #: position of each value, by location
    values: dict[Loc, Pos] = field(default_factory=dict)
    #: position of each mapping key, by the location of its value
    keys: dict[Loc, Pos] = field(default_factory=dict)
    #: locations of strings still holding a ``${VAR}`` (unset, or left alone by ``skip_env``)
    unresolved: set[Loc] = field(default_factory=set)
    issues: list[RawIssue] = field(default_factory=list)

    def pos(self, loc: Loc, *, key: bool = False) -> Pos:
        """Where ``loc`` is (its key with ``key=True``), or its closest known parent."""
        if key and loc in self.keys:
            return self.keys[loc]
        for end in range(len(loc), -1, -1):
            found = self.values.get(loc[:end])
            if found is not None:
                return found
        return Pos(1, 1)


def _pos(mark: Any) -> Pos:
    return Pos(mark.line + 1, mark.column + 1)


def read_document(text: str, env: Mapping[str, str], *, skip_env: bool = False) -> Document:
    """Compose ``text`` and convert it; YAML syntax errors become one issue."""
    try:
        node = yaml.compose(text, Loader=SpecLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _pos(mark) if mark is not None else Pos(1, 1)
        detail = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return Document(None, issues=[RawIssue(where, (), f"YAML syntax error: {detail}")])
    except yaml.YAMLError as exc:
        return Document(None, issues=[RawIssue(Pos(1, 1), (), f"YAML error: {exc}")])
    doc = Document(None)
    if node is not None:
        doc.data = _Builder(doc, env, skip_env).build(node, ())
    return doc


class _Builder:
    def __init__(self, doc: Document, env: Mapping[str, str], skip_env: bool) -> None:
        self.doc, self.env, self.skip_env = doc, env, skip_env
        self.active: set[int] = set()

    def issue(self, pos: Pos, loc: Loc, message: str) -> None:
        self.doc.issues.append(RawIssue(pos, loc, message))

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        pos = _pos(node.start_mark)
        self.doc.values.setdefault(loc, pos)
        if id(node) in self.active:
            self.issue(pos, loc, "recursive alias")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, loc, pos)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != SEQ:
                    self.issue(pos, loc, f"unsupported tag {node.tag!r}")
                return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                if node.tag != MAP:
                    self.issue(pos, loc, f"unsupported tag {node.tag!r}")
                return self.mapping(node, loc)
        finally:
            self.active.discard(id(node))
        self.issue(pos, loc, "unsupported YAML node")
        return None

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_pos = _pos(key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                self.issue(key_pos, loc, "mapping keys must be plain strings")
                continue
            key = str(key_node.value)
            child = (*loc, key)
            if key in result:
                first = self.doc.keys[child]
                self.issue(
                    key_pos, child, f"duplicate key {key!r} (first defined at line {first.line}, column {first.col})"
                )
                continue
            self.doc.keys[child] = key_pos
            result[key] = self.build(value_node, child)
        return result

    def scalar(self, node: yaml.ScalarNode, loc: Loc, pos: Pos) -> Any:
        text = str(node.value)
        if node.tag != STR:
            if node.tag in (INT, FLOAT, BOOL, NULL):
                try:
                    return core_scalar(node.tag, text)
                except ValueError:
                    self.issue(pos, loc, f"cannot read {text!r} as {node.tag.rsplit(':', 1)[-1]}")
                    return text
            self.issue(pos, loc, f"unsupported tag {node.tag!r}")
            return text
        if "$" not in text:
            return text
        result = interpolate(text, self.env, skip_env=self.skip_env)
        for problem in result.problems:
            self.issue(self._offset_pos(node, pos, problem.offset), loc, problem.message)
        if result.multiline and node.style not in ("|", ">"):
            for offset, name in result.multiline:
                self.issue(
                    self._offset_pos(node, pos, offset),
                    loc,
                    f"the value of {name} contains a line break, which a single-line value cannot hold"
                    " (use a block scalar '|' for multi-line text)",
                )
        if result.unresolved or result.problems:
            self.doc.unresolved.add(loc)
        return result.text

    @staticmethod
    def _offset_pos(node: yaml.ScalarNode, pos: Pos, offset: int) -> Pos:
        """The column of character ``offset`` when the scalar's source is a verbatim single line."""
        start, end = node.start_mark, node.end_mark
        if start.line != end.line:
            return pos
        width = end.column - start.column
        text = str(node.value)
        if node.style is None and width == len(text):
            return Pos(pos.line, pos.col + offset)
        if node.style in ("'", '"') and width == len(text) + 2:
            return Pos(pos.line, pos.col + 1 + offset)
        return pos


__all__ = ["Document", "Pos", "RawIssue", "SpecLoader", "core_scalar", "format_path", "read_document"]
