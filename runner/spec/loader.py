"""Loading a spec: YAML -> interpolated data -> section models and plugin params.

Every problem is collected (syntax, unset variables, unknown keys, wrong types, unknown
plugins and events) and raised together as one :class:`SpecError`.
"""

from __future__ import annotations

import copy
import os
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError
from pydantic_core import to_jsonable_python

from runner.actions.when import NO_MESSAGE_EVENTS, Condition, WhenSpec, compile_when
from runner.params import TRANSPORT_EVENTS
from runner.pipeline.task import PipelineTask
from runner.plugins.discovery import ACTIONS, PROCESSORS, VAD, PluginRegistry, UnknownPluginError
from runner.settings import EnvOverride, env_overrides, is_secret
from runner.spec.errors import Loc, SpecError, SpecIssue, did_you_mean, format_path
from runner.spec.models import (
    ID_PATTERN,
    SECRET_KEY,
    ActionSpec,
    ProcessorSpec,
    Spec,
    SpecDocument,
    VadSpec,
    valid_id,
)
from runner.spec.yamlio import Document, Pos, read_document

MASK = "********"
#: Keys an event-list entry may have besides its action's own parameters.
STEP_KEYS = ("action", "when", "otherwise")


def builtin_events() -> tuple[str, ...]:
    """Events every spec may handle: the transport's and the pipeline task's."""
    return (*TRANSPORT_EVENTS, *PipelineTask.events)


def load_spec(
    path: str | os.PathLike[str],
    registry: PluginRegistry,
    *,
    env: Mapping[str, str] | None = None,
    skip_env: bool = False,
) -> Spec:
    """Read and validate the spec at ``path``; raises :class:`SpecError` listing every problem.

    ``env`` defaults to ``os.environ``; ``skip_env=True`` leaves unset ``${VAR}`` references
    in place and does not check the values that hold them.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecIssue(file, 0, 0, "", "no such file")]) from None
    except IsADirectoryError:
        raise SpecError([SpecIssue(file, 0, 0, "", "is a directory, not a spec file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(file, 0, 0, "", f"cannot read: {exc}")]) from None
    return parse_spec(text, registry, file=file, env=env, skip_env=skip_env)


def parse_spec(
    text: str,
    registry: PluginRegistry,
    *,
    file: str = "<spec>",
    env: Mapping[str, str] | None = None,
    skip_env: bool = False,
) -> Spec:
    """Validate spec text (``file`` is only used in messages); see :func:`load_spec`.

    ``PIPELINE_RUN_<SECTION>__<KEY>`` variables in ``env`` override the file's values after
    ``${VAR}`` interpolation; a bad one is reported under its variable's name.
    """
    environ = os.environ if env is None else env
    doc = read_document(text, environ, skip_env=skip_env)
    checker = _Checker(doc, registry, file)
    checker.apply_overrides(environ)
    spec = checker.run()
    if checker.issues or spec is None:
        raise SpecError(checker.issues or [SpecIssue(file, 1, 1, "", "invalid spec")])
    return spec


class _Checker:
    def __init__(self, doc: Document, registry: PluginRegistry, file: str) -> None:
        self.doc, self.registry, self.file = doc, registry, file
        self.issues: list[SpecIssue] = []
        #: spec settings taken from the environment, by location
        self.overrides: dict[Loc, EnvOverride] = {}

    # ------------------------------------------------------------------ environment overrides

    def apply_overrides(self, env: Mapping[str, str]) -> None:
        """Put ``PIPELINE_RUN_*`` nested settings into the document (parents before children)."""
        found, errors = env_overrides(env)
        for error in errors:
            self.issues.append(SpecIssue(self.file, 0, 0, format_path(error.loc), str(error)))
        data = self.doc.data
        if not isinstance(data, dict):
            return  # empty or not a mapping: reported by run()
        for override in found:
            parent: Any = data
            for seg in override.loc[:-1]:
                if parent.get(seg) is None:
                    parent[seg] = {}
                parent = parent[seg]
                if not isinstance(parent, dict):
                    break  # the file's value is not a section: the document model reports it
            else:
                parent[override.loc[-1]] = copy.deepcopy(override.value)
                self.overrides[override.loc] = override
                self.doc.unresolved = {u for u in self.doc.unresolved if u[: len(override.loc)] != override.loc}

    def env_source(self, loc: Loc) -> EnvOverride | None:
        """The override that set ``loc`` or a section holding it."""
        for end in range(len(loc), 0, -1):
            found = self.overrides.get(loc[:end])
            if found is not None:
                return found
        return None

    # ------------------------------------------------------------------ reporting

    def add(self, loc: Loc, message: str, *, key: bool = False, pos: Pos | None = None) -> None:
        source = self.env_source(loc) if pos is None else None
        if source is not None:
            shown = MASK if is_secret(source.variable) else repr(source.text)
            message = f"{message} (from environment variable {source.variable}={shown})"
            self.issues.append(SpecIssue(self.file, 0, 0, format_path(loc), message))
            return
        where = pos or self.doc.pos(loc, key=key)
        self.issues.append(SpecIssue(self.file, where.line, where.col, format_path(loc), message))

    def held_back(self, loc: Loc) -> bool:
        """True at a value whose ``${VAR}`` was not resolved (already reported, or skipped)."""
        return any(loc[:end] in self.doc.unresolved for end in range(len(loc), 0, -1))

    # ------------------------------------------------------------------ the whole file

    def run(self) -> Spec | None:
        for raw in self.doc.issues:
            self.add(raw.loc, raw.message, pos=raw.pos)
        data = self.doc.data
        if data is None:
            if not self.doc.issues:
                self.add((), "the file is empty; a spec starts with 'version: 1'")
            return None
        if not isinstance(data, dict):
            self.add((), "a spec must be a mapping of sections (version, server, ice, processors, ...)")
            return None
        core = self.validate(SpecDocument, data, ())
        vad = self.check_vad(data.get("vad"))
        processors, all_resolved = self.check_processors(data.get("processors"))
        events = self.check_events(data.get("events"), processors, all_resolved)
        if self.issues or not isinstance(core, SpecDocument):
            return None
        return Spec(
            version=core.version,
            server=core.server,
            ice=core.ice,
            codecs=core.codecs,
            transport=core.transport,
            pipeline=core.pipeline,
            vad=vad,
            processors=processors,
            events=events,
            source=self.file,
        )

    # ------------------------------------------------------------------ plugin sections

    def check_vad(self, raw: Any) -> VadSpec | None:
        if not isinstance(raw, dict):
            return None
        loc: Loc = ("vad",)
        plugin = self.plugin(VAD, raw, "type", loc)
        if plugin is None:
            return None
        params = self.plugin_params(plugin, raw, ("type",), loc)
        return None if params is None else VadSpec(type=raw["type"], plugin=plugin, params=params)

    def check_processors(self, raw: Any) -> tuple[list[ProcessorSpec], bool]:
        result: list[ProcessorSpec] = []
        all_resolved = True
        if not isinstance(raw, list):
            return result, all_resolved
        ids: dict[str, Loc] = {}
        for i, entry in enumerate(raw):
            loc: Loc = ("processors", i)
            if not isinstance(entry, dict):
                continue  # the document model reports it
            pid = entry.get("id")
            if "id" not in entry:
                self.add(loc, "missing required key 'id' (a unique name for this processor)")
            elif not isinstance(pid, str) or not valid_id(pid):
                self.add((*loc, "id"), f"invalid id {pid!r}: use letters, digits, '_', '.', '-' ({ID_PATTERN})")
            elif pid in ids:
                first = self.doc.pos(ids[pid])
                self.add(
                    (*loc, "id"), f"duplicate processor id {pid!r} (first at line {first.line}, column {first.col})"
                )
            else:
                ids[pid] = (*loc, "id")
            plugin = self.plugin(PROCESSORS, entry, "type", loc)
            if plugin is None:
                all_resolved = False
                continue
            params = self.plugin_params(plugin, entry, ("id", "type"), loc)
            if params is not None and isinstance(pid, str):
                result.append(ProcessorSpec(id=pid, type=entry["type"], plugin=plugin, params=params))
        return result, all_resolved

    def check_events(
        self, raw: Any, processors: list[ProcessorSpec], all_resolved: bool
    ) -> dict[str, list[ActionSpec]]:
        result: dict[str, list[ActionSpec]] = {}
        if not isinstance(raw, dict):
            return result
        if all_resolved:
            plugins: Iterable[type] = [p.plugin for p in processors]
        else:  # an unknown processor type: accept the events of any installed processor
            plugins = [self.registry.get(PROCESSORS, name) for name in self.registry.names(PROCESSORS)]
        known = list(dict.fromkeys([*builtin_events(), *(e for p in plugins for e in getattr(p, "events", ()))]))
        for name, entries in raw.items():
            loc: Loc = ("events", name)
            if name not in known:
                hint = did_you_mean(name, known) or f" (known events: {', '.join(sorted(known))})"
                self.add(loc, f"unknown event {name!r}{hint}", key=True)
            if isinstance(entries, list):
                result[name] = self.check_steps(name, entries, loc)
        return result

    # ------------------------------------------------------------------ event handlers

    def check_steps(self, event: str, entries: list[Any], loc: Loc) -> list[ActionSpec]:
        """An event's list: actions, ``when`` conditions and at most one trailing ``otherwise``."""
        steps: list[ActionSpec] = []
        first_when: Loc | None = None
        otherwise_at: Loc | None = None
        for j, entry in enumerate(entries):
            here: Loc = (*loc, j)
            if not isinstance(entry, dict):
                continue  # the document model reports it
            if "otherwise" in entry:
                steps.extend(self.check_otherwise(event, entry, here, first_when, otherwise_at))
                otherwise_at = otherwise_at or here
                continue
            if "when" in entry:
                first_when = first_when or here
                if otherwise_at is not None:
                    self.add(
                        (*here, "when"),
                        "this `when` comes after `otherwise`, so it never runs: move `otherwise` last",
                        key=True,
                    )
            step = self.check_action(event, entry, here)
            if step is not None:
                steps.append(step)
        return steps

    def check_otherwise(
        self, event: str, entry: dict[str, Any], loc: Loc, first_when: Loc | None, otherwise_at: Loc | None
    ) -> list[ActionSpec]:
        key_loc: Loc = (*loc, "otherwise")
        for key in entry:
            if key != "otherwise":
                self.add(
                    (*loc, key), "an `otherwise` entry holds only its list: otherwise: [{action: ...}, ...]", key=True
                )
        if otherwise_at is not None:
            first = self.doc.pos(otherwise_at)
            self.add(key_loc, f"a second `otherwise` (the first is at line {first.line}); keep one, last", key=True)
        elif first_when is None:
            self.add(
                key_loc,
                "`otherwise` runs when no `when` above it matched, but this list has no `when` before it",
                key=True,
            )
        raw = entry["otherwise"]
        if not isinstance(raw, list):
            self.add(key_loc, "otherwise takes a list of actions, e.g. otherwise: [{action: log}]")
            return []
        steps: list[ActionSpec] = []
        for k, item in enumerate(raw):
            here: Loc = (*key_loc, k)
            if not isinstance(item, dict):
                self.add(here, "an action is a mapping such as {action: log}")
                continue
            nested = [key for key in ("when", "otherwise") if key in item]
            for key in nested:
                self.add(
                    (*here, key), f"no `{key}` inside `otherwise`: it runs only when nothing above matched", key=True
                )
            step = self.check_action(event, {k2: v for k2, v in item.items() if k2 not in nested}, here)
            if step is not None:
                steps.append(step._replace(otherwise=True))
        return steps

    def check_action(self, event: str, entry: dict[str, Any], loc: Loc) -> ActionSpec | None:
        if "action" not in entry:
            typo = next((k for k in entry if isinstance(k, str) and did_you_mean(k, STEP_KEYS)), None)
            if typo is not None:
                self.add((*loc, typo), f"unknown key {typo!r}{did_you_mean(typo, STEP_KEYS)}", key=True)
                return None
        plugin = self.plugin(ACTIONS, entry, "action", loc)
        condition = self.check_when(event, entry["when"], loc) if "when" in entry else None
        if plugin is None:
            return None
        params = self.plugin_params(plugin, entry, ("action", "when"), loc)
        if params is None:
            return None
        spec_issues = getattr(plugin, "spec_issues", None)
        for sub, message in spec_issues(params, event) if callable(spec_issues) else ():
            self.add((*loc, *sub), message)
        return ActionSpec(entry["action"], plugin, params, when=condition)

    def check_when(self, event: str, raw: Any, loc: Loc) -> Condition | None:
        when_loc: Loc = (*loc, "when")
        if event in NO_MESSAGE_EVENTS:
            self.add(
                when_loc,
                f"{event} carries no message for `when` to match (it suits on_client_message, on_app_message)",
                key=True,
            )
            return None
        if not isinstance(raw, dict):
            self.add(when_loc, "when takes a mapping of type, data and/or message, e.g. when: {type: get-count}")
            return None
        spec = self.validate(WhenSpec, raw, when_loc)
        if self.held_back(when_loc) or any(u[: len(when_loc)] == when_loc for u in self.doc.unresolved):
            return Condition.never(raw)  # never unconditional: this `when` cannot be known yet
        if not isinstance(spec, WhenSpec):
            return None
        condition, problems = compile_when(spec)
        for problem in problems:
            self.add((*when_loc, *problem.loc), problem.message, key=problem.at_key)
        return condition

    def plugin(self, group: str, entry: dict[str, Any], key: str, loc: Loc) -> Any:
        kind = group.rsplit(".", 1)[-1].rstrip("s")
        if key not in entry:
            self.add(loc, f"missing required key {key!r} (the {kind} plugin to use)")
            return None
        name = entry[key]
        if not isinstance(name, str):
            self.add((*loc, key), f"{key} must be a string naming a {kind} plugin")
            return None
        if self.held_back((*loc, key)):
            return None
        try:
            return self.registry.get(group, name)
        except UnknownPluginError as exc:
            self.add((*loc, key), str(exc))
            return None

    def plugin_params(self, plugin: type, entry: dict[str, Any], reserved: tuple[str, ...], loc: Loc) -> Any:
        params_cls = getattr(plugin, "Params", None)
        if not (isinstance(params_cls, type) and issubclass(params_cls, BaseModel)):
            self.add(loc, f"plugin {plugin.__qualname__} has no pydantic Params model")
            return None
        data = {k: v for k, v in entry.items() if k not in reserved}
        return self.validate(params_cls, data, loc, reserved=reserved)

    # ------------------------------------------------------------------ pydantic -> issues

    def validate(self, model: type[BaseModel], data: dict[str, Any], base: Loc, reserved: tuple[str, ...] = ()) -> Any:
        data = copy.deepcopy(data)
        for _ in range(8):
            try:
                return model.model_validate(data)
            except ValidationError as exc:
                skipped = self.report(model, data, base, exc, reserved)
            if skipped is None or not _drop(data, skipped):
                break
        return None if skipped is None else model.model_construct(**data)

    def report(
        self, model: type[BaseModel], data: Any, base: Loc, exc: ValidationError, reserved: tuple[str, ...]
    ) -> list[Loc] | None:
        """Report ``exc``'s errors; the locations held back by ``${VAR}``, or None if any error was real."""
        grouped: dict[tuple[Loc, bool], list[str]] = {}
        skipped: list[Loc] = []
        for err in exc.errors():
            loc = _data_loc(data, err["loc"], err["type"])
            if self.held_back(base + loc):
                skipped.append(loc)
                continue
            kind = err["type"]
            if kind == "extra_forbidden" and loc:
                names = [*reserved, *_field_names(model, loc[:-1])]
                key = str(loc[-1])
                hint = did_you_mean(key, names) or (f" (valid keys: {', '.join(names)})" if names else "")
                grouped.setdefault((base + loc, True), []).append(f"unknown key {key!r}{hint}")
            elif kind == "missing" and loc:
                grouped.setdefault((base + loc, False), []).append(f"missing required key {loc[-1]!r}")
            else:
                message = str(err["msg"]).removeprefix("Value error, ")
                grouped.setdefault((base + loc, False), []).append(message)
        for (full, at_key), messages in grouped.items():
            self.add(full, " or ".join(dict.fromkeys(messages)), key=at_key)
        return None if grouped else skipped


def _data_loc(data: Any, loc: tuple[int | str, ...], kind: str) -> Loc:
    """pydantic's error location reduced to real keys and indexes (union tags dropped)."""
    out: list[str | int] = []
    current = data
    for i, seg in enumerate(loc):
        if isinstance(current, dict) and isinstance(seg, str) and seg in current:
            current = current[seg]
        elif isinstance(current, list) and isinstance(seg, int) and 0 <= seg < len(current):
            current = current[seg]
        elif isinstance(current, dict) and i == len(loc) - 1 and kind in ("missing", "extra_forbidden"):
            pass
        else:
            continue
        out.append(seg)
    return tuple(out)


def _drop(data: dict[str, Any], locs: list[Loc]) -> bool:
    """Remove the dict entries at ``locs`` so defaults apply; True when something was removed."""
    removed = False
    for loc in locs:
        parent: Any = data
        for seg in loc[:-1]:
            if isinstance(parent, dict) and isinstance(seg, str):
                parent = parent.get(seg)
            elif isinstance(parent, list) and isinstance(seg, int) and seg < len(parent):
                parent = parent[seg]
            else:
                parent = None
        if loc and isinstance(parent, dict) and loc[-1] in parent:
            del parent[loc[-1]]
            removed = True
    return removed


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return []
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _field_names(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the model found at ``loc`` inside ``model`` (empty when unclear)."""
    current = model
    for seg in loc:
        if isinstance(seg, int):
            continue
        field = current.model_fields.get(seg)
        models = _models_in(field.annotation) if field is not None else []
        if len(models) != 1:
            return []
        current = models[0]
    return list(current.model_fields)


# ---------------------------------------------------------------------- rendering


def _masked(value: Any, key: str | None = None) -> Any:
    if isinstance(value, SecretStr | SecretBytes):
        return MASK
    if key is not None and SECRET_KEY.search(key) and value not in (None, "", [], {}):
        return MASK
    if isinstance(value, dict):
        return {str(k): _masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return to_jsonable_python(value)


def _dump(model: BaseModel) -> Any:
    return _masked(model.model_dump(mode="python"))


def spec_data(spec: Spec) -> dict[str, Any]:
    """The resolved spec as plain data (secrets masked), in file order."""
    data: dict[str, Any] = {"version": spec.version}
    for name in ("server", "ice", "codecs", "transport", "pipeline"):
        data[name] = _dump(getattr(spec, name))
    data["vad"] = None if spec.vad is None else {"type": spec.vad.type, **_dump(spec.vad.params)}
    data["processors"] = [{"id": p.id, "type": p.type, **_dump(p.params)} for p in spec.processors]
    data["events"] = {name: _steps_data(steps) for name, steps in spec.events.items()}
    return data


def _steps_data(steps: list[ActionSpec]) -> list[dict[str, Any]]:
    """An event's steps in the file's shape: ``when`` on its action, ``otherwise`` regrouped."""
    out: list[dict[str, Any]] = []
    for step in steps:
        item: dict[str, Any] = {"action": step.action, **_dump(step.params)}
        if step.when is not None:
            item = {"when": _masked(step.when.source), **item}
        if not step.otherwise:
            out.append(item)
        elif out and "otherwise" in out[-1]:
            out[-1]["otherwise"].append(item)
        else:
            out.append({"otherwise": [item]})
    return out


def render_config(spec: Spec) -> str:
    """The resolved spec as YAML, with secrets shown as ``'********'``."""
    return yaml.safe_dump(spec_data(spec), sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
