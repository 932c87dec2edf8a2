"""The published JSON Schema (draft-07, for editors and check-jsonschema).

Built from the section models and every installed plugin's ``Params``. Plugin entries use
``type``/``action`` with an ``enum`` (completion) and one ``if``/``then`` per plugin (exact
errors); typed leaves also accept a whole ``${VAR}`` string, since interpolation happens
before the strict models run.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from pydantic import AliasChoices, BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from runner.actions.when import WhenSpec
from runner.params import TRANSPORT_EVENTS
from runner.pipeline.task import PipelineTask
from runner.plugins.discovery import ACTIONS, PROCESSORS, VAD, PluginRegistry
from runner.spec.interpolate import REF_PATTERN
from runner.spec.models import ID_PATTERN, SpecDocument

DRAFT_07 = "http://json-schema.org/draft-07/schema#"
#: Where the checked-in schema lives, relative to the project root.
SCHEMA_PATH = Path("schemas") / "pipeline.schema.json"
ENV_REF: dict[str, Any] = {"type": "string", "pattern": REF_PATTERN, "description": "a ${VAR} reference"}
_ANNOTATIONS = ("title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly")


class _Generator(GenerateJsonSchema):
    """pydantic's generator plus the other spellings (``AliasChoices``) a field accepts.

    Descriptions are pydantic's own: the models use ``use_attribute_docstrings``, so the
    string under a field is its ``description`` here, in ``plugins --markdown`` and in code.
    """

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        result = super().model_schema(schema)
        props = result.get("properties")
        if isinstance(props, dict):
            _add_alias_choices(cast(type[BaseModel], schema["cls"]), props)
        return result


def _add_alias_choices(model: type[BaseModel], props: dict[str, Any]) -> None:
    """Other spellings a field accepts (``AliasChoices``) are valid keys too, e.g. VAD ``threshold``."""
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        if not isinstance(alias, AliasChoices):
            continue
        choices = [c for c in alias.choices if isinstance(c, str)]
        main = next((c for c in choices if c in props), name)
        for other in choices:
            if other not in props and main in props:
                props[other] = {**props[main], "description": f"Same as `{main}`."}


def _summary(obj: Any) -> str | None:
    doc = inspect.getdoc(obj)
    return doc.strip().splitlines()[0] if doc else None


class _Builder:
    def __init__(self) -> None:
        self.definitions: dict[str, Any] = {}

    def model(self, model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
        """``model``'s schema; nested models go to definitions under ``prefix``."""
        result = model.model_json_schema(ref_template=f"#/definitions/{prefix}{{model}}", schema_generator=_Generator)
        for name, sub in result.pop("$defs", {}).items():
            self.definitions[prefix + name] = sub
        return result

    def dispatch(
        self,
        kind: str,
        key: str,
        registry: PluginRegistry,
        group: str,
        extra: dict[str, Any],
        optional: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An object whose ``key`` picks the plugin; one if/then branch per plugin.

        ``extra`` are required keys every entry has besides ``key``, ``optional`` keys it may have.
        """
        optional = optional or {}
        names = registry.names(group)
        branches = []
        for name in names:
            plugin = registry.get(group, name)
            params = getattr(plugin, "Params", None)
            own = self.model(params, f"{kind}.{name}.") if isinstance(params, type) else {}
            branch: dict[str, Any] = {
                "type": "object",
                "properties": {**extra, **optional, key: {"const": name}, **own.get("properties", {})},
                "required": [*extra, key, *own.get("required", [])],
                "additionalProperties": False,
            }
            if description := _summary(plugin):
                branch["description"] = description
            self.definitions[f"{kind}.{name}"] = branch
            branches.append(
                {
                    "if": {"properties": {key: {"const": name}}, "required": [key]},
                    "then": {"$ref": f"#/definitions/{kind}.{name}"},
                }
            )
        choice: dict[str, Any] = {"type": "string", "description": f"the {kind} plugin (entry point name)"}
        if names:
            choice["enum"] = names
        result: dict[str, Any] = {
            "type": "object",
            "properties": {**extra, **optional, key: choice},
            "required": [*extra, key],
        }
        if branches:
            result["allOf"] = branches
        return result


def _events(registry: PluginRegistry) -> dict[str, Any]:
    sources: dict[str, list[str]] = {}
    for name in TRANSPORT_EVENTS:
        sources.setdefault(name, []).append("the transport")
    for name in PipelineTask.events:
        sources.setdefault(name, []).append("the pipeline task")
    for plugin_name in registry.names(PROCESSORS):
        for name in getattr(registry.get(PROCESSORS, plugin_name), "events", ()):
            sources.setdefault(name, []).append(f"processor {plugin_name}")
    step = {
        "if": {"type": "object", "required": ["otherwise"]},
        "then": {"$ref": "#/definitions/otherwise"},
        "else": {"$ref": "#/definitions/action"},
    }
    return {
        name: {
            "type": "array",
            "items": step,
            "description": f"Actions run when {' / '.join(src)} fires {name}.",
        }
        for name, src in sources.items()
    }


def _otherwise() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "otherwise": {
                "type": "array",
                "items": {"$ref": "#/definitions/action"},
                "description": "Actions run when no `when` above this entry matched (place it last).",
            }
        },
        "required": ["otherwise"],
        "additionalProperties": False,
        "description": "The actions for messages no `when` in this list matched.",
    }


def generate_schema(registry: PluginRegistry) -> dict[str, Any]:
    """The draft-07 JSON Schema of a spec with the plugins in ``registry``."""
    builder = _Builder()
    top = builder.model(SpecDocument)
    id_schema = {"type": "string", "pattern": ID_PATTERN, "description": "unique name of this processor"}
    processor = builder.dispatch("processor", "type", registry, PROCESSORS, {"id": id_schema})
    vad = builder.dispatch("vad", "type", registry, VAD, {})
    for branch in vad.get("allOf", []):
        branch["if"]["type"] = "object"  # `vad: null` must not take a branch
    vad["type"] = ["object", "null"]
    vad["default"] = None
    vad["description"] = "voice activity detection for input audio (null: none)"
    when = builder.model(WhenSpec)
    when["description"] = "Run this action only for matching messages; the first `when` that matches wins."
    builder.definitions["when"] = when
    builder.definitions["otherwise"] = _otherwise()
    builder.definitions["action"] = builder.dispatch(
        "action", "action", registry, ACTIONS, {}, {"when": {"$ref": "#/definitions/when"}}
    )
    top["properties"]["processors"] = {
        "type": "array",
        "items": processor,
        "description": "the processor chain, in order, between transport input and output",
    }
    top["properties"]["vad"] = vad
    top["properties"]["events"] = {
        "type": "object",
        "properties": _events(registry),
        "additionalProperties": False,
        "description": "event name -> actions to run, in order",
    }
    top["properties"]["version"]["description"] = "spec format version"
    schema: dict[str, Any] = {
        "$schema": DRAFT_07,
        "title": "pipeline-run spec",
        "description": "A real-time WebRTC voice/video bot, declared in one file (pipeline-run).",
        **{k: v for k, v in top.items() if k not in ("title", "description")},
        "definitions": builder.definitions,
    }
    _tidy(schema, top_level=True)
    return schema


def _subschemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("properties", "definitions", "patternProperties"):
        for sub in (schema.get(key) or {}).values():
            if isinstance(sub, dict):
                yield sub
    for key in ("additionalProperties", "items", "not", "if", "then", "else", "contains"):
        sub = schema.get(key)
        if isinstance(sub, dict):
            yield sub
    for key in ("anyOf", "oneOf", "allOf", "items"):
        subs = schema.get(key)
        if isinstance(subs, list):
            yield from (s for s in subs if isinstance(s, dict))


def _tidy(schema: dict[str, Any], *, top_level: bool = False) -> None:
    """Drop pydantic's generated titles and let typed leaves take a ``${VAR}``."""
    if not top_level:
        schema.pop("title", None)
    for key in ("properties", "patternProperties"):
        props = schema.get(key)
        if isinstance(props, dict):
            for name, sub in props.items():
                if isinstance(sub, dict):
                    props[name] = _allow_env(sub)
    for key in ("items", "additionalProperties"):
        sub = schema.get(key)
        if isinstance(sub, dict) and "$ref" not in sub:
            schema[key] = _allow_env(sub)
    for sub in _subschemas(schema):
        _tidy(sub)


def _typed_leaf(schema: dict[str, Any]) -> bool:
    """True for a schema a whole-string ``${VAR}`` would fail (numbers, booleans, non-string enums)."""
    if "const" in schema or "$ref" in schema:
        return False
    if "enum" in schema and "type" not in schema:
        return any(not isinstance(v, str) for v in schema["enum"])
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return bool(set(kinds) & {"integer", "number", "boolean"})


def _allow_env(schema: dict[str, Any]) -> dict[str, Any]:
    branches = schema.get("anyOf")
    if isinstance(branches, list):
        if any(_typed_leaf(b) for b in branches) and not any(
            b.get("type") == "string" and len(b) == 1 for b in branches
        ):
            return {**schema, "anyOf": [*branches, copy.deepcopy(ENV_REF)]}
        return schema
    if not _typed_leaf(schema):
        return schema
    outer = {k: v for k, v in schema.items() if k in _ANNOTATIONS}
    inner = {k: v for k, v in schema.items() if k not in _ANNOTATIONS}
    return {**outer, "anyOf": [inner, copy.deepcopy(ENV_REF)]}


def schema_text(registry: PluginRegistry) -> str:
    """:func:`generate_schema` as stable JSON text (sorted keys, 2-space indent, final newline)."""
    return json.dumps(generate_schema(registry), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def find_schema_path(start: str | os.PathLike[str] | None = None) -> Path:
    """``schemas/pipeline.schema.json`` of the project containing ``start`` (default: the working directory)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / SCHEMA_PATH).exists() or (folder / "pyproject.toml").exists():
            return folder / SCHEMA_PATH
    return here / SCHEMA_PATH


def check_schema_file(path: str | os.PathLike[str], registry: PluginRegistry) -> str | None:
    """None when ``path`` holds the current schema, else why not (with a short unified diff).

    The message does not repeat ``path``; callers prefix it (``f"{path}: {message}"``).
    """
    fresh = schema_text(registry)
    try:
        current = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot read: {exc}"
    if current == fresh:
        return None
    diff = list(
        difflib.unified_diff(
            current.splitlines(), fresh.splitlines(), f"{path} (checked in)", f"{path} (generated)", lineterm="", n=2
        )
    )
    shown = diff[:80] + ([f"... {len(diff) - 80} more diff lines"] if len(diff) > 80 else [])
    return "stale (it differs from what the installed plugins generate):\n" + "\n".join(shown)
