"""Entry-point discovery: the only module that imports ``entrypoints``.

Each plugin is loaded on its own; one that fails to import, is not a subclass of its
group's base class, or shares its name with another plugin is recorded as broken (with
its package) and never stops the others from loading.
"""

from __future__ import annotations

import difflib
import importlib.metadata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import entrypoints
import structlog

from runner.actions.base import Action
from runner.audio.vad import VADAnalyzer
from runner.processors.base import FrameProcessor

_log = structlog.get_logger("runner.plugins")

PROCESSORS = "pipeline_run.processors"
VAD = "pipeline_run.vad"
ACTIONS = "pipeline_run.actions"
GROUPS: dict[str, type] = {PROCESSORS: FrameProcessor, VAD: VADAnalyzer, ACTIONS: Action}


@dataclass(frozen=True)
class PluginInfo:
    """One entry point: where it comes from and what loading it gave."""

    group: str
    name: str
    package: str
    version: str
    target: str
    obj: type | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.obj is not None and self.error is None

    @property
    def display_name(self) -> str:
        return f"{self.package}[{self.name}]"


class UnknownPluginError(LookupError):
    """A spec names a plugin that is not installed (or is broken)."""

    def __init__(self, group: str, name: str, known: Sequence[str], broken: PluginInfo | None = None) -> None:
        self.group, self.name, self.known, self.broken = group, name, list(known), broken
        kind = group.rsplit(".", 1)[-1].rstrip("s")
        if broken is not None:
            message = f"{kind} plugin {name!r} from {broken.package} failed to load: {broken.error}"
        else:
            message = f"unknown {kind} type {name!r}"
            close = difflib.get_close_matches(name, self.known, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {close[0]!r}?"
            elif self.known:
                message += f" (installed: {', '.join(sorted(self.known))})"
        super().__init__(message)


@dataclass
class PluginRegistry:
    """Every plugin of every group, loaded once."""

    plugins: list[PluginInfo] = field(default_factory=list)

    @classmethod
    def discover(cls, path: Sequence[str] | None = None) -> PluginRegistry:
        """Scan entry points on ``path`` (default: ``sys.path``) and load them all."""
        found: list[PluginInfo] = []
        for group, base in GROUPS.items():
            found.extend(_load_group(group, base, path))
        return cls(plugins=sorted(found, key=lambda p: (p.group, p.name, p.package)))

    def ok(self, group: str) -> dict[str, PluginInfo]:
        """Working plugins of ``group`` by name."""
        return {p.name: p for p in self.plugins if p.group == group and p.ok}

    def broken(self) -> list[PluginInfo]:
        return [p for p in self.plugins if not p.ok]

    def names(self, group: str) -> list[str]:
        return sorted(self.ok(group))

    def get(self, group: str, name: str) -> type:
        """The class registered as ``name`` in ``group``; raises :class:`UnknownPluginError`."""
        info = self.ok(group).get(name)
        if info is not None and info.obj is not None:
            return info.obj
        broken = next((p for p in self.plugins if p.group == group and p.name == name), None)
        raise UnknownPluginError(group, name, self.names(group), broken)

    def processor(self, name: str) -> type[FrameProcessor]:
        return self.get(PROCESSORS, name)

    def vad(self, name: str) -> type[VADAnalyzer]:
        return self.get(VAD, name)

    def action(self, name: str) -> type[Action]:
        return self.get(ACTIONS, name)


def _load_group(group: str, base: type, path: Sequence[str] | None) -> list[PluginInfo]:
    infos: list[PluginInfo] = []
    seen: dict[str, PluginInfo] = {}
    for package, version, ep_name, target, loader in _entry_points(group, path):
        key = f"{package}|{ep_name}|{target}"
        if key in seen:  # the same distribution seen twice on sys.path
            continue
        info = _load_one(group, base, package, version, ep_name, target, loader)
        seen[key] = info
        infos.append(info)
    return _mark_duplicates(infos)


def _load_one(group: str, base: type, package: str, version: str, name: str, target: str, loader: object) -> PluginInfo:
    try:
        obj = loader.load()  # type: ignore[attr-defined]
    except Exception as exc:  # any import-time failure of a third-party module
        return PluginInfo(
            group, name, package, version, target, error=f"cannot import {target}: {type(exc).__name__}: {exc}"
        )
    if not (isinstance(obj, type) and issubclass(obj, base)):
        return PluginInfo(
            group,
            name,
            package,
            version,
            target,
            error=f"{target} is not a subclass of {base.__module__}.{base.__qualname__}",
        )
    return PluginInfo(group, name, package, version, target, obj=obj)


def _mark_duplicates(infos: list[PluginInfo]) -> list[PluginInfo]:
    by_name: dict[str, list[PluginInfo]] = {}
    for info in infos:
        by_name.setdefault(info.name, []).append(info)
    result: list[PluginInfo] = []
    for same in by_name.values():
        if len(same) == 1:
            result.extend(same)
            continue
        owners = ", ".join(p.display_name for p in same)
        for info in same:
            result.append(
                PluginInfo(
                    info.group,
                    info.name,
                    info.package,
                    info.version,
                    info.target,
                    error=f"name {info.name!r} is registered by several packages: {owners}",
                )
            )
    return result


def _entry_points(group: str, path: Sequence[str] | None) -> Iterable[tuple[str, str, str, str, object]]:
    try:
        eps = entrypoints.get_group_all(group, path=list(path) if path is not None else None)
    except Exception as exc:
        # One malformed entry_points.txt anywhere aborts entrypoints' whole scan;
        # importlib.metadata reads each distribution on its own.
        if path is not None:
            raise
        _log.warning("entry_point_scan_fell_back", group=group, error=f"{type(exc).__name__}: {exc}")
        for ep in importlib.metadata.entry_points(group=group):
            dist = ep.dist
            yield (dist.name if dist else "?", dist.version if dist else "?", ep.name, ep.value, ep)
        return
    for ep in eps:
        distro = ep.distro
        target = f"{ep.module_name}:{ep.object_name}" if ep.object_name else ep.module_name
        yield (distro.name if distro else "?", distro.version if distro else "?", ep.name, target, ep)
