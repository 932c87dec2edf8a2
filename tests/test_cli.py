"""The `pipeline-run` command, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "pipeline-run")


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "TURN_PASSWORD"}
    full_env.update(env or {})
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=60)


def test_every_shipped_pipeline_validates() -> None:
    files = sorted(str(p) for p in (ROOT / "pipelines").glob("*.yaml"))
    assert files
    result = run("validate", "--skip-env", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checked_in_schema_is_fresh() -> None:
    result = run("schema", "--check")
    assert result.returncode == 0, result.stderr


def test_schema_is_draft7_with_a_branch_per_processor_type() -> None:
    schema = json.loads(run("schema").stdout)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    text = json.dumps(schema)
    assert "audio.tone" in text and "frequency" in text


def test_four_problems_are_all_reported_with_line_and_column(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "version: 1\n"
        "server:\n"
        "  prot: 7860\n"  # misspelt key
        "transport:\n"
        "  audio_in_enabled: maybe\n"  # wrong type
        "processors:\n"
        "  - {id: echo, type: audio.echoo}\n"  # unknown plugin
        "ice:\n"
        "  servers:\n"
        "    - urls: turn:127.0.0.1:3478\n"
        "      username: me\n"
        "      credential: ${TURN_PASSWORD}\n"  # unset variable
    )
    result = run("validate", str(spec))
    assert result.returncode == 1
    out = result.stdout
    assert f"{spec}:3:3: server.prot" in out and "did you mean 'port'" in out
    assert f"{spec}:5:21: transport.audio_in_enabled" in out
    assert f"{spec}:7:22: processors[0].type" in out and "did you mean 'audio.echo'" in out
    assert f"{spec}:12:19:" in out and "TURN_PASSWORD" in out
    assert "Traceback" not in out + result.stderr


def test_run_with_a_bad_spec_exits_1_without_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("version: 1\nprocessors: [{id: x, type: nope}]\n")
    result = run(str(spec))  # the short form of `run`
    assert result.returncode == 1
    assert "unknown processor type 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_masks_secrets(tmp_path: Path) -> None:
    spec = tmp_path / "turn.yaml"
    spec.write_text(
        "version: 1\nice:\n  servers:\n"
        "    - {urls: 'turn:127.0.0.1:3478', username: u, credential: '${TURN_PASSWORD}'}\n"
    )
    result = run("config", str(spec), env={"TURN_PASSWORD": "hunter2"})
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    assert "********" in result.stdout


def test_plugins_table_lists_builtins() -> None:
    result = run("plugins")
    assert result.returncode == 0, result.stderr
    for name in ("audio.echo", "audio.tone", "passthrough", "say", "energy"):
        assert name in result.stdout


@pytest.mark.parametrize("args", [[], ["frobnicate"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert run(*args).returncode == 2
