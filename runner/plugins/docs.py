"""Reference documentation of installed plugins, from their ``Params`` models.

Everything comes from pydantic: field types, defaults, constraints and descriptions (the
base ``Params`` models set ``use_attribute_docstrings``, so the string under a field is its
description). Nothing here reads source code.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import annotated_types
from pydantic import AliasChoices, BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from runner.plugins.discovery import ACTIONS, PROCESSORS, VAD, PluginInfo, PluginRegistry

#: How each group is presented, and how a spec uses one of its plugins.
KIND_TITLES: dict[str, tuple[str, str]] = {
    PROCESSORS: ("Processors", "a `processors` entry: `- {id: NAME, type: TYPE, ...parameters}`"),
    VAD: ("VAD analyzers", "the `vad` section: `vad: {type: TYPE, ...parameters}`"),
    ACTIONS: ("Event actions", "a step of an event: `on_client_ready: [{action: TYPE, ...parameters}]`"),
}
_DEFAULT_WIDTH = 60
_RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_RST_LITERAL = re.compile(r"``([^`]+)``")
_BOUNDS: tuple[tuple[type, str, str], ...] = (
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.MultipleOf, "multiple_of", "multiple of"),
    (annotated_types.MinLen, "min_length", "length ≥"),
    (annotated_types.MaxLen, "max_length", "length ≤"),
)


@dataclass(frozen=True)
class ParamDoc:
    """One parameter of a plugin, ready to print."""

    name: str
    type: str
    required: bool
    default: Any
    """The default as JSON-like data (secrets masked); None when required."""
    description: str
    constraints: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


def type_text(annotation: Any) -> str:
    """A readable type: ``float | null``, ``list[str]``, ``"input" | "output"``."""
    if annotation is None or annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin is typing.Literal:
        return " | ".join(json.dumps(to_jsonable_python(a)) for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_text(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join('...' if a is Ellipsis else type_text(a) for a in args)}]" if args else name
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _constraints(field: FieldInfo) -> tuple[str, ...]:
    found = []
    for item in field.metadata:
        for cls, attr, symbol in _BOUNDS:
            if isinstance(item, cls):
                found.append(f"{symbol} {getattr(item, attr)}")
    return tuple(found)


def _jsonable(value: Any) -> Any:
    if isinstance(value, SecretStr | SecretBytes):
        return "********"
    return to_jsonable_python(value, fallback=repr)


def param_docs(model: type[BaseModel]) -> list[ParamDoc]:
    """The documented parameters of ``model``, in declaration order."""
    docs = []
    for name, field in model.model_fields.items():
        required = field.is_required()
        default = None
        if not required:
            raw = field.get_default(call_default_factory=True)
            default = None if raw is PydanticUndefined else _jsonable(raw)
        alias = field.validation_alias
        aliases = (
            tuple(a for a in alias.choices if isinstance(a, str) and a != name)
            if isinstance(alias, AliasChoices)
            else ()
        )
        docs.append(
            ParamDoc(
                name=name,
                type=type_text(field.annotation),
                required=required,
                default=default,
                description=inspect.cleandoc(field.description or ""),
                constraints=_constraints(field),
                aliases=aliases,
            )
        )
    return docs


def nested_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """Models used inside ``model``'s fields (e.g. the ``Rule`` of ``rules: list[Rule]``), depth first."""
    found: list[type[BaseModel]] = []

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found and annotation is not model:
                found.append(annotation)
                for sub in annotation.model_fields.values():
                    visit(sub.annotation)
            return
        for arg in typing.get_args(annotation):
            visit(arg)

    for field in model.model_fields.values():
        visit(field.annotation)
    return found


def prose(text: str) -> str:
    """A docstring as Markdown: reST literals and roles become code spans."""
    return _RST_LITERAL.sub(r"`\1`", _RST_ROLE.sub(r"`\1`", text))


def cell(text: str) -> str:
    """``text`` safe inside one Markdown table cell (one line, pipes escaped)."""
    return " ".join(text.split()).replace("|", "\\|")


def code(text: str) -> str:
    """An inline code span holding ``text`` verbatim (longer fences when it contains backticks)."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * (max(runs) + 1 if runs else 1)
    # CommonMark strips one space from each side of a span that has both: keep them balanced.
    edge = text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" ") and text.strip())
    pad = " " if edge else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _default_text(doc: ParamDoc) -> str:
    if doc.required:
        return "*required*"
    text = json.dumps(doc.default, ensure_ascii=False)
    if len(text) > _DEFAULT_WIDTH:
        text = text[: _DEFAULT_WIDTH - 1] + "…"
    return code(text)


def params_table(model: type[BaseModel]) -> list[str]:
    """The Markdown table of ``model``'s parameters (no lines when it has none)."""
    docs = param_docs(model)
    if not docs:
        return []
    lines = ["| parameter | type | default | description |", "|---|---|---|---|"]
    for doc in docs:
        kind = code(doc.type) + (f" ({', '.join(doc.constraints)})" if doc.constraints else "")
        description = prose(doc.description) or "—"
        unmentioned = [a for a in doc.aliases if a not in description]
        if unmentioned:
            description += f" (also spelt {', '.join(code(a) for a in unmentioned)})"
        lines.append(f"| {cell(code(doc.name))} | {cell(kind)} | {cell(_default_text(doc))} | {cell(description)} |")
    return lines


def _own_doc(cls: type) -> str:
    doc = cls.__dict__.get("__doc__")
    return prose(inspect.cleandoc(doc)) if isinstance(doc, str) and doc.strip() else ""


def _plugin_section(info: PluginInfo) -> Iterator[str]:
    yield f"### `{info.name}`"
    yield ""
    yield f"Package `{info.package}` {info.version} · entry point `{info.target}`"
    yield ""
    cls = info.obj
    assert cls is not None
    if summary := _own_doc(cls):
        yield summary
        yield ""
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        return
    table = params_table(params)
    if not table:
        yield "No parameters."
        yield ""
        return
    yield from table
    yield ""
    for sub in nested_models(params):
        yield f"`{sub.__name__}`" + (f": {_own_doc(sub)}" if _own_doc(sub) else "")
        yield ""
        yield from params_table(sub)
        yield ""


def plugins_markdown(registry: PluginRegistry) -> str:
    """Reference docs of every plugin in ``registry``: one section per kind, a table per plugin."""
    lines = [
        "# pipeline-run plugins",
        "",
        "Generated by `pipeline-run plugins --markdown` from the `Params` models of the installed plugins.",
        "",
    ]
    for group, (title, usage) in KIND_TITLES.items():
        infos = [p for p in registry.plugins if p.group == group and p.ok]
        if not infos:
            continue
        lines += [f"## {title}", "", f"In a spec: {usage}.", ""]
        for info in infos:
            lines += list(_plugin_section(info))
    broken = registry.broken()
    if broken:
        lines += ["## Broken plugins", "", "| name | kind | package | problem |", "|---|---|---|---|"]
        for info in broken:
            kind = KIND_TITLES.get(info.group, (info.group, ""))[0]
            lines.append(f"| {cell(code(info.name))} | {kind} | {cell(info.package)} | {cell(info.error or '')} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


__all__ = ["ParamDoc", "code", "param_docs", "params_table", "plugins_markdown", "type_text"]
