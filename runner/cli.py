"""The ``pipeline-run`` command.

Exit codes: 0 ok, 1 invalid spec or failed check, 2 usage error, 3 runtime failure.
stdout carries data (schema, config, tables); logs and diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from runner.plugins import PluginRegistry
    from runner.reload import SpecReloader
    from runner.server import BotFactory, ServerConfig
    from runner.spec import Spec

SCHEMA_PATH = Path("schemas/pipeline.schema.json")
SUBCOMMANDS = ("run", "validate", "schema", "plugins", "config", "connect", "new")


def _version() -> str:
    try:
        return version("pipeline-run")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline-run",
        description="Serve a real-time voice/video bot declared in a YAML file.",
        epilog="`pipeline-run FILE.yaml` is short for `pipeline-run run FILE.yaml`.",
    )
    parser.add_argument("--version", action="version", version=f"pipeline-run {_version()}")
    parser.add_argument("--log-level", default=None, help="debug, info, warning, error (default: info)")
    parser.add_argument(
        "--log-format",
        choices=["auto", "console", "json"],
        default=None,
        help="auto = console on a terminal, JSON otherwise",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="serve the bot and its test page")
    run.add_argument("file", type=Path)
    run.add_argument("--host", help="address to listen on (overrides server.host)")
    run.add_argument("--port", type=int, help="port to listen on (overrides server.port)")
    run.add_argument("--max-sessions", type=int, help="overrides server.max_sessions")
    run.add_argument(
        "--ice-host-address",
        action="append",
        metavar="IP",
        dest="ice_host_addresses",
        help="local address ICE gathers from, loopback allowed (repeatable; overrides ice.host_addresses)",
    )
    run.add_argument("--debug-webrtc", action="store_true", help="show aiortc/aioice logs")
    run.add_argument(
        "--reload",
        action="store_true",
        help="follow the spec file: new sessions get each valid new version, live sessions keep theirs",
    )

    validate = sub.add_parser("validate", help="check spec files; print every problem")
    validate.add_argument("files", type=Path, nargs="+")
    validate.add_argument("--skip-env", action="store_true", help="do not require ${VAR}s to be set")
    validate.add_argument("--format", choices=["text", "json"], default="text")

    schema = sub.add_parser("schema", help="print the JSON Schema for specs, from the installed plugins")
    schema.add_argument("--out", type=Path, help="write to this file instead of stdout")
    schema.add_argument(
        "--check", action="store_true", help=f"fail when {SCHEMA_PATH} (or --out) is not what would be generated"
    )

    plugins = sub.add_parser("plugins", help="list installed plugins and their parameters")
    plugins_format = plugins.add_mutually_exclusive_group()
    plugins_format.add_argument("--json", action="store_true", help="machine-readable output")
    plugins_format.add_argument(
        "--markdown", action="store_true", help="reference docs: every plugin's parameters, types, defaults"
    )
    plugins.add_argument("--out", type=Path, help="write to this file instead of stdout")

    config = sub.add_parser("config", help="print the resolved spec, secrets masked")
    config.add_argument("file", type=Path)

    new = sub.add_parser("new", help="start a new project from a template")
    new_sub = new.add_subparsers(dest="template", metavar="TEMPLATE", required=True)
    new_plugin = new_sub.add_parser(
        "plugin",
        help="a plugin distribution: pyproject with its entry point, code with typed Params, tests, README",
    )
    new_plugin.add_argument("name", help="the entry-point name a spec uses as `type:`, e.g. acme.reverse")
    new_plugin.add_argument(
        "--kind",
        choices=["processor", "vad", "action"],
        default="processor",
        help="a pipeline processor, a voice activity detector or an event action (default: processor)",
    )
    new_plugin.add_argument(
        "--dir", type=Path, help="where to write it (default: ./pipeline-run-NAME); must not exist or must be empty"
    )

    from runner.client.cli import add_connect_arguments

    connect = sub.add_parser("connect", help="connect to a bot as a client: play, record, measure, load-test")
    add_connect_arguments(connect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args_list if not a.startswith("-")), None)
    if first is not None and first not in SUBCOMMANDS and first.endswith((".yaml", ".yml")):
        args_list.insert(args_list.index(first), "run")
    parser = _parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2

    from runner.logs import configure_logging
    from runner.settings import RunnerSettings

    settings = RunnerSettings()
    try:
        configure_logging(
            args.log_level or settings.log_level,
            args.log_format or settings.log_format,
            quiet_webrtc=not getattr(args, "debug_webrtc", False),
        )
    except ValueError as exc:
        parser.error(str(exc))
    _warn_unknown_env()
    handler = {
        "run": _cmd_run,
        "validate": _cmd_validate,
        "schema": _cmd_schema,
        "plugins": _cmd_plugins,
        "config": _cmd_config,
        "connect": _cmd_connect,
        "new": _cmd_new,
    }[args.command]
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130


def _warn_unknown_env() -> None:
    """Name each ``PIPELINE_RUN_`` variable that sets nothing (a typo would otherwise be silent)."""
    import os

    from runner.settings import unknown_variables

    for message in unknown_variables(os.environ):
        print(f"pipeline-run: warning: {message}", file=sys.stderr)


def _registry() -> PluginRegistry:
    from runner.plugins import PluginRegistry

    registry = PluginRegistry.discover()
    err = Console(stderr=True)
    for info in registry.broken():
        err.print(f"[yellow]warning:[/] plugin {info.display_name} ({info.group}) is broken: {info.error}")
    return registry


def _load(path: Path, registry: PluginRegistry, *, skip_env: bool = False) -> Spec | None:
    from runner.spec import SpecError, load_spec

    try:
        return load_spec(path, registry, skip_env=skip_env)
    except SpecError as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr)
        return None


def _cmd_validate(args: argparse.Namespace, _settings: object) -> int:
    from runner.spec import SpecError, load_spec

    registry = _registry()
    results: list[dict[str, object]] = []
    failed = False
    for path in args.files:
        try:
            load_spec(path, registry, skip_env=args.skip_env)
            results.append({"file": str(path), "ok": True, "issues": []})
        except SpecError as exc:
            failed = True
            results.append({"file": str(path), "ok": False, "issues": [str(i) for i in exc.issues]})
    if args.format == "json":
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            issues = result["issues"]
            assert isinstance(issues, list)
            if issues:
                for line in issues:
                    print(line)
            else:
                print(f"{result['file']}: ok")
    return 1 if failed else 0


def _cmd_schema(args: argparse.Namespace, _settings: object) -> int:
    from runner.spec import check_schema_file, schema_text

    registry = _registry()
    if args.check:
        target = args.out or SCHEMA_PATH
        problem = check_schema_file(target, registry)
        if problem:
            print(f"{target}: {problem}\nregenerate with: pipeline-run schema --out {target}", file=sys.stderr)
            return 1
        print(f"{target}: up to date")
        return 0
    text = schema_text(registry)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_plugins(args: argparse.Namespace, _settings: object) -> int:
    from runner.plugins.docs import param_docs, plugins_markdown

    if args.out is not None and not (args.markdown or args.json):
        print("pipeline-run plugins: --out needs --markdown or --json", file=sys.stderr)
        return 2
    registry = _registry()
    if args.markdown:
        return _emit(plugins_markdown(registry), args.out)
    rows = []
    for info in registry.plugins:
        params = getattr(info.obj, "Params", None)
        fields = {}
        if params is not None:
            for doc in param_docs(params):
                fields[doc.name] = {
                    "type": doc.type,
                    "default": doc.default,
                    "required": doc.required,
                    "description": doc.description,
                }
        rows.append(
            {
                "group": info.group.rsplit(".", 1)[-1],
                "name": info.name,
                "package": info.package,
                "version": info.version,
                "ok": info.ok,
                "error": info.error,
                "params": fields,
            }
        )
    if args.json:
        return _emit(json.dumps(rows, indent=2, default=str) + "\n", args.out)
    table = Table(title="pipeline-run plugins", show_lines=False)
    for column in ("kind", "type", "package", "version"):
        table.add_column(column, no_wrap=True)
    table.add_column("parameters (* required)")
    for row in rows:
        if row["ok"]:
            params_text = (
                ", ".join(
                    f"{name}*" if meta["required"] else f"{name}={_short(meta['default'])}"
                    for name, meta in row["params"].items()  # type: ignore[attr-defined]
                )
                or "-"
            )
        else:
            params_text = f"[red]broken: {row['error']}[/]"
        table.add_row(str(row["group"]), str(row["name"]), str(row["package"]), str(row["version"]), params_text)
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    return 0


def _emit(text: str, out: Path | None) -> int:
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"pipeline-run: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _short(value: object, limit: int = 16) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cmd_config(args: argparse.Namespace, _settings: object) -> int:
    from runner.spec import render_config

    spec = _load(args.file, _registry())
    if spec is None:
        return 1
    sys.stdout.write(render_config(spec))
    return 0


def _cmd_connect(args: argparse.Namespace, _settings: object) -> int:
    from runner.client.cli import run_connect

    return run_connect(args)


def _cmd_new(args: argparse.Namespace, _settings: object) -> int:
    from runner.scaffold import ScaffoldError, scaffold_plugin

    try:
        names, written = scaffold_plugin(args.name, args.kind, args.dir)
    except ScaffoldError as exc:
        print(f"pipeline-run new plugin: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"pipeline-run new plugin: cannot write {exc.filename or args.dir}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    root = args.dir or Path(names.distribution)
    for path in written:
        print(path)
    print(
        f"\n{args.kind} plugin {names.name!r} written to {root}/ (package {names.package}, class {names.class_name}).\n"
        f"Next:  cd {root} && pip install -e '.[test]' && pytest\n"
        f"Then:  pipeline-run plugins   # lists {names.name}",
        file=sys.stderr,
    )
    return 0


def _cmd_run(args: argparse.Namespace, settings: object) -> int:
    from runner.build import make_bot, server_config
    from runner.settings import RunnerSettings

    assert isinstance(settings, RunnerSettings)
    registry = _registry()
    reloader = None
    if args.reload:
        from runner.reload import SpecReloader
        from runner.spec import SpecError

        try:
            reloader = SpecReloader.open(args.file, registry)
        except SpecError as exc:
            for issue in exc.issues:
                print(str(issue), file=sys.stderr)
            return 1
        spec: Spec | None = reloader.current
    else:
        spec = _load(args.file, registry)
    if spec is None:
        return 1
    config = server_config(
        spec,
        host=args.host or settings.host,
        port=args.port if args.port is not None else settings.port,
        max_sessions=args.max_sessions or settings.max_sessions,
        host_addresses=args.ice_host_addresses,
    )
    following = " (following the file: --reload)" if reloader is not None else ""
    print(
        f"pipeline-run: serving {args.file} on http://{config.host}:{config.port}{following} (Ctrl-C stops)",
        file=sys.stderr,
    )
    try:
        asyncio.run(_serve(config, make_bot(reloader if reloader is not None else spec), reloader))
    except OSError as exc:  # e.g. the port is taken
        print(f"pipeline-run: cannot serve on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 3
    return 0


async def _serve(config: ServerConfig, bot: BotFactory, reloader: SpecReloader | None) -> None:
    from runner.server import serve

    if reloader is None:
        await serve(config, bot)
        return
    watcher = asyncio.create_task(reloader.watch(), name="spec-reload")
    watcher.add_done_callback(_watch_ended)
    try:
        await serve(config, bot)
    finally:
        watcher.cancel()


def _watch_ended(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    import structlog

    exc = task.exception()
    structlog.get_logger("runner.cli").error(
        "spec_reload_stopped", error=repr(exc), exc_info=exc if exc is not None else None
    )
    print(f"pipeline-run: --reload stopped ({exc!r}); the current spec stays until restart", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
