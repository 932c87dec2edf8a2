"""``pipeline-run run --reload``: follow the spec file while serving, without a restart.

:class:`SpecReloader` holds the spec in force. The bot factory asks it for the current spec
when a session starts (``make_bot(reloader)``), so new sessions get the newest valid version
and live sessions keep the one they started with. :meth:`SpecReloader.watch` polls the file
on the event loop (the read and validation run in a worker thread); a file that no longer
validates is reported with positions, exactly as ``validate`` prints them, and the previous
version stays in force. Settings the running server has already applied (``server``, ``ice``,
``codecs``) are reported as ignored until restart. Plugins are discovered once, at start.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import BaseModel

from runner.plugins import PluginRegistry
from runner.spec import Spec, SpecError, SpecIssue, parse_spec

log = structlog.get_logger("runner.reload")

#: Seconds between two looks at the spec file.
POLL_SECS = 0.5
#: Spec sections the server applies once, at start.
RESTART_SECTIONS: tuple[str, ...] = ("server", "ice", "codecs")

Status = Literal["unchanged", "reloaded", "restored", "invalid", "missing"]


@dataclass(frozen=True)
class ReloadResult:
    """What one look at the spec file found."""

    status: Status
    version: int
    """The version in force after this look (1 = the spec the server started with)."""
    issues: list[SpecIssue] = field(default_factory=list)
    """Why the file was refused (``invalid``)."""
    ignored: list[str] = field(default_factory=list)
    """Restart-only settings (e.g. ``server.port``) that differ from what the server runs with (``reloaded``)."""


def _read(path: Path) -> bytes | None | SpecIssue:
    """The file's bytes, None when it is gone, or why it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return SpecIssue(str(path), 0, 0, "", "is a directory, not a spec file")
    except OSError as exc:
        return SpecIssue(str(path), 0, 0, "", f"cannot read: {exc}")


def _decode(path: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([SpecIssue(str(path), 0, 0, "", f"cannot read: {exc}")]) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")  # what read_text() (and load_spec) sees


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_leaves(sub, f"{prefix}.{key}"))
        return out or {prefix: value}
    return {prefix: value}


def restart_only_changes(old: Spec, new: Spec, sections: tuple[str, ...] = RESTART_SECTIONS) -> list[str]:
    """Paths under ``sections`` whose value differs between ``old`` and ``new`` (secrets compared, not shown)."""
    changed: list[str] = []
    for section in sections:
        before, after = getattr(old, section), getattr(new, section)
        assert isinstance(before, BaseModel) and isinstance(after, BaseModel)
        a, b = _leaves(before.model_dump(), section), _leaves(after.model_dump(), section)
        changed += [path for path in sorted(a.keys() | b.keys()) if a.get(path) != b.get(path)]
    return changed


class SpecReloader:
    """The spec in force, replaced by each valid new version of its file.

    Call it (or read :attr:`current`) for the spec a new session should use. Start it with
    :meth:`open`, which validates the file once and raises :class:`SpecError` if it is bad.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        spec: Spec,
        registry: PluginRegistry,
        *,
        digest: bytes | None,
        interval: float = POLL_SECS,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.path = Path(path)
        self.registry = registry
        self.interval = interval
        self.version = 1
        self._env = env
        self._current = spec
        self._started = spec  # what the server applied its restart-only settings from
        self._applied = digest
        self._seen: bytes | None | Literal["missing"] = digest

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        registry: PluginRegistry,
        *,
        interval: float = POLL_SECS,
        env: Mapping[str, str] | None = None,
    ) -> SpecReloader:
        """Read and validate ``path``; raises :class:`SpecError` listing every problem."""
        file = Path(path)
        raw = _read(file)
        if raw is None:
            raise SpecError([SpecIssue(str(file), 0, 0, "", "no such file")])
        if isinstance(raw, SpecIssue):
            raise SpecError([raw])
        spec = parse_spec(_decode(file, raw), registry, file=str(file), env=env)
        return cls(file, spec, registry, digest=hashlib.sha256(raw).digest(), interval=interval, env=env)

    @property
    def current(self) -> Spec:
        """The spec new sessions get."""
        return self._current

    def __call__(self) -> Spec:
        return self._current

    def _look(self) -> tuple[bytes | Literal["missing"], Spec | SpecError | None]:
        """Read the file and, when it changed since the last look, validate it (no state touched)."""
        raw = _read(self.path)
        if raw is None:
            return "missing", None
        if isinstance(raw, SpecIssue):
            return hashlib.sha256(str(raw).encode()).digest(), SpecError([raw])
        digest = hashlib.sha256(raw).digest()
        if digest == self._seen or digest == self._applied:
            return digest, None
        try:
            return digest, parse_spec(_decode(self.path, raw), self.registry, file=str(self.path), env=self._env)
        except SpecError as exc:
            return digest, exc

    async def check(self) -> ReloadResult:
        """Look at the file once; adopt a changed valid spec, keep the old one otherwise."""
        digest, outcome = await asyncio.to_thread(self._look)
        if digest == self._seen:
            return ReloadResult("unchanged", self.version)
        self._seen = digest
        if digest == "missing":
            return ReloadResult("missing", self.version)
        if digest == self._applied:
            return ReloadResult("restored", self.version)
        if isinstance(outcome, SpecError):
            return ReloadResult("invalid", self.version, issues=list(outcome.issues))
        assert isinstance(outcome, Spec)
        ignored = restart_only_changes(self._started, outcome)
        self._current, self._applied = outcome, digest
        self.version += 1
        return ReloadResult("reloaded", self.version, ignored=ignored)

    async def watch(self, report: Callable[[SpecReloader, ReloadResult], None] | None = None) -> None:
        """Poll every :attr:`interval` seconds until cancelled, reporting every change."""
        report = report or report_change
        while True:
            await asyncio.sleep(self.interval)
            try:
                result = await self.check()
                if result.status != "unchanged":
                    report(self, result)
            except Exception as exc:  # a bug here must not stop the server: logged, and we go on
                log.error("spec_reload_error", file=str(self.path), version=self.version, error=repr(exc), exc_info=exc)


def report_change(reloader: SpecReloader, result: ReloadResult) -> None:
    """Tell the operator on stderr (``validate``'s format for problems) and in the log."""
    file = str(reloader.path)
    lines: list[str] = []
    if result.status == "reloaded":
        lines.append(
            f"pipeline-run: {file} changed: new sessions get version {result.version}, live sessions keep theirs"
        )
        lines += [f"{file}: {path}: changed; ignored until the server restarts" for path in result.ignored]
        log.info("spec_reloaded", file=file, version=result.version, ignored=result.ignored)
    elif result.status == "invalid":
        lines.append(f"pipeline-run: {file} changed but is not valid; version {result.version} stays in force:")
        lines += [str(issue) for issue in result.issues]
        log.warning("spec_reload_refused", file=file, version=result.version, issues=[str(i) for i in result.issues])
    elif result.status == "missing":
        lines.append(f"pipeline-run: {file} is gone; version {result.version} stays in force")
        log.warning("spec_missing", file=file, version=result.version)
    elif result.status == "restored":
        lines.append(f"pipeline-run: {file} is back to version {result.version}, which is still in force")
        log.info("spec_restored", file=file, version=result.version)
    if lines:
        print("\n".join(lines), file=sys.stderr, flush=True)


__all__ = ["POLL_SECS", "RESTART_SECTIONS", "ReloadResult", "SpecReloader", "report_change", "restart_only_changes"]
