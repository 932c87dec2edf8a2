"""A plugin published as its own package shows up in `plugins` and works from a spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN_SOURCE = Path(__file__).parent / "data" / "throwaway_plugin"
CLI = str(Path(sys.executable).parent / "pipeline-run")


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(PLUGIN_SOURCE),
        ],
        check=True,
        cwd=build,
        capture_output=True,
    )
    return site


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(site), "PIPELINE_RUN_LOG_FORMAT": "json"}


def test_installed_plugin_is_listed_with_package_version_and_params(plugin_site: Path) -> None:
    result = subprocess.run([CLI, "plugins", "--json"], env=_env(plugin_site), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    shout = rows["text.shout"]
    assert shout["ok"] and shout["version"] == "0.3.1"
    assert shout["package"].replace("_", "-") == "shout-plugin"
    assert "suffix" in shout["params"]


def test_installed_plugin_validates_and_runs_from_a_spec(plugin_site: Path, tmp_path: Path) -> None:
    spec = tmp_path / "shout.yaml"
    spec.write_text("version: 1\nprocessors:\n  - {id: loud, type: text.shout, suffix: '!!'}\n")
    ok = subprocess.run([CLI, "validate", str(spec)], env=_env(plugin_site), capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    script = textwrap.dedent(
        f"""
        import asyncio
        from runner.build import build_processors
        from runner.frames import TextFrame
        from runner.plugins import PluginRegistry
        from runner.spec import load_spec
        from runner.testing import run_processor

        spec = load_spec({str(spec)!r}, PluginRegistry.discover())
        (processor,) = build_processors(spec)
        run = asyncio.run(run_processor(processor, [TextFrame(text="hello")]))
        print([f.text for f in run.of_type(TextFrame)])
        """
    )
    result = subprocess.run([sys.executable, "-c", script], env=_env(plugin_site), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "['HELLO!!']" in result.stdout


def test_misspelt_plugin_parameter_is_reported_at_its_line(plugin_site: Path, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("version: 1\nprocessors:\n  - id: loud\n    type: text.shout\n    sufix: '!!'\n")
    result = subprocess.run([CLI, "validate", str(spec)], env=_env(plugin_site), capture_output=True, text=True)
    assert result.returncode == 1
    assert f"{spec}:5:5:" in result.stdout
    assert "did you mean 'suffix'" in result.stdout
