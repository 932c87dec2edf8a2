"""``pipeline-run new plugin NAME``: a ready-to-install plugin distribution from our templates.

The templates live beside this module (``templates/common`` plus one folder per kind) and are
rendered with :class:`string.Template`; a path part ``__package__`` becomes the import package.
Everything is written to a temporary folder first and renamed into place at the end, so a
failure never leaves half a project behind.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import string
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

Kind = Literal["processor", "vad", "action"]
KINDS: tuple[Kind, ...] = ("processor", "vad", "action")
#: The entry-point group each kind registers in (see :mod:`runner.plugins.discovery`).
GROUP_OF: dict[Kind, str] = {
    "processor": "pipeline_run.processors",
    "vad": "pipeline_run.vad",
    "action": "pipeline_run.actions",
}
_CLASS_SUFFIX: dict[Kind, str] = {"processor": "", "vad": "VAD", "action": "Action"}
NAME_PATTERN = r"^[a-z][a-z0-9]*(?:[._-][a-z0-9]+)*$"
_NAME = re.compile(NAME_PATTERN)
MAX_NAME_LENGTH = 64
_PACKAGE_MARK = "__package__"
_SUFFIX = ".tmpl"


class ScaffoldError(ValueError):
    """The plugin cannot be generated (bad name, taken name, existing directory)."""


@dataclass(frozen=True)
class PluginNames:
    """Every name a plugin called ``name`` goes by."""

    name: str
    """The entry-point name, what a spec's ``type:`` (or ``action:``) says: ``acme.reverse``."""
    kind: Kind
    distribution: str
    """The pip distribution: ``pipeline-run-acme-reverse``."""
    package: str
    """The import package: ``pipeline_run_acme_reverse``."""
    class_name: str
    """The plugin class: ``AcmeReverse`` (``...VAD``, ``...Action`` for the other kinds)."""

    @property
    def group(self) -> str:
        return GROUP_OF[self.kind]


def plugin_names(name: str, kind: Kind = "processor") -> PluginNames:
    """The names of plugin ``name``; raises :class:`ScaffoldError` saying what is wrong with it."""
    if kind not in GROUP_OF:
        raise ScaffoldError(f"unknown plugin kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not name:
        raise ScaffoldError("the plugin name is empty; give one like 'acme.reverse'")
    if len(name) > MAX_NAME_LENGTH:
        raise ScaffoldError(f"plugin name {name!r} is longer than {MAX_NAME_LENGTH} characters")
    if not _NAME.match(name):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lower-case letters and digits in parts joined by '.', '-' "
            "or '_', starting with a letter (e.g. 'acme.reverse')"
        )
    parts = re.split(r"[._-]", name)
    return PluginNames(
        name=name,
        kind=kind,
        distribution="pipeline-run-" + "-".join(parts),
        package="pipeline_run_" + "_".join(parts),
        class_name="".join(part[:1].upper() + part[1:] for part in parts) + _CLASS_SUFFIX[kind],
    )


def taken_names(group: str) -> dict[str, str]:
    """Plugin names already registered in ``group``, with their distribution (nothing is imported)."""
    taken: dict[str, str] = {}
    for entry in importlib.metadata.entry_points(group=group):
        taken.setdefault(entry.name, entry.dist.name if entry.dist is not None else "?")
    return taken


def _runner_requirement() -> str:
    try:
        release = importlib.metadata.version("pipeline-run")
    except importlib.metadata.PackageNotFoundError:
        return "pipeline-run"
    numbers = re.findall(r"\d+", release)[:2]
    return f"pipeline-run>={'.'.join(numbers)}" if len(numbers) == 2 else "pipeline-run"


def _template_files(root: Traversable, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            yield from _template_files(entry, (*prefix, entry.name))
        elif entry.name.endswith(_SUFFIX):
            yield (*prefix, entry.name[: -len(_SUFFIX)]), entry.read_text(encoding="utf-8")


def render_plugin(names: PluginNames) -> dict[str, str]:
    """The generated project as ``{relative path: text}``, without touching the disk."""
    values: Mapping[str, str] = {
        "name": names.name,
        "kind": names.kind,
        "group": names.group,
        "distribution": names.distribution,
        "package": names.package,
        "class_name": names.class_name,
        "runner_requirement": _runner_requirement(),
    }
    templates = files("runner.scaffold").joinpath("templates")
    rendered: dict[str, str] = {}
    for folder in ("common", names.kind):
        for parts, text in _template_files(templates.joinpath(folder)):
            path = "/".join(parts).replace(_PACKAGE_MARK, names.package)
            rendered[path] = string.Template(text).substitute(values)
    return rendered


def write_plugin(names: PluginNames, target: str | os.PathLike[str]) -> list[Path]:
    """Write the project into ``target`` (which must not exist, or be empty); returns the files."""
    destination = Path(target)
    if destination.is_symlink() or destination.is_file():
        raise ScaffoldError(f"{destination} exists and is not a directory; pick another --dir")
    if destination.is_dir() and any(destination.iterdir()):
        raise ScaffoldError(f"{destination} already exists and is not empty; refusing to overwrite it")
    rendered = render_plugin(names)
    parent = destination.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=parent))
    try:
        for relative, text in rendered.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if destination.is_dir():
            destination.rmdir()  # empty, checked above
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(destination / relative for relative in rendered)


def scaffold_plugin(
    name: str,
    kind: Kind = "processor",
    target: str | os.PathLike[str] | None = None,
    *,
    taken: Mapping[str, str] | None = None,
) -> tuple[PluginNames, list[Path]]:
    """Validate ``name``, then write its distribution to ``target`` (default ``./<distribution>``).

    ``taken`` maps plugin names already installed in the kind's group to their package
    (default: :func:`taken_names`); a clash is refused, since two plugins of one name both
    end up broken.
    """
    names = plugin_names(name, kind)
    owner = (taken_names(names.group) if taken is None else taken).get(name)
    if owner is not None:
        raise ScaffoldError(f"a {kind} plugin named {name!r} is already installed (from {owner}); pick another name")
    return names, write_plugin(names, Path(target) if target is not None else Path(names.distribution))
