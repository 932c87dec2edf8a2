"""`pipeline-run new plugin`: scaffold each kind, pip install, its own tests, listing, schema, a spec that runs.

One install serves every test of the chain: the three generated distributions go into one
``--target`` folder (offline, no build isolation) that the commands see through PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runner.scaffold import KINDS, NAME_PATTERN, Kind, ScaffoldError, plugin_names, scaffold_plugin
from tests.support.cli_server import CLI, ListeningClient, cli_server, dominant_frequency, rms_dbfs

PLUGINS: dict[Kind, str] = {"processor": "acme.gain", "vad": "acme.loud", "action": "acme.notice"}
RUFF = str(Path(sys.executable).parent / "ruff")


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(site), "PIPELINE_RUN_LOG_FORMAT": "json"}


def _cli(*args: str, site: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=_env(site), cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three scaffolded projects, side by side, and ``site/`` with all of them installed.

    ``generated.json`` lists what the command wrote, before pip added its build folders.
    """
    root = tmp_path_factory.mktemp("scaffold")
    making = [
        subprocess.Popen(
            [CLI, "new", "plugin", name, "--kind", kind], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for kind, name in PLUGINS.items()
    ]
    for made in making:
        _out, err = made.communicate(timeout=60)
        assert made.returncode == 0, err.decode()
    projects = [str(root / plugin_names(name, kind).distribution) for kind, name in PLUGINS.items()]
    listing = {p: sorted(str(f.relative_to(p)) for f in Path(p).rglob("*") if f.is_file()) for p in projects}
    (root / "generated.json").write_text(json.dumps(listing))
    installed = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--no-deps", "--no-build-isolation", "--no-index", "--target", str(root / "site")),
            *projects,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return root


def test_each_kind_gets_pyproject_code_tests_and_readme(workspace: Path) -> None:
    listing = json.loads((workspace / "generated.json").read_text())
    for kind, name in PLUGINS.items():
        names = plugin_names(name, kind)
        project = workspace / names.distribution
        assert listing[str(project)] == [
            "README.md",
            "pyproject.toml",
            f"src/{names.package}/__init__.py",
            f"src/{names.package}/py.typed",
            f"tests/test_{names.package}.py",
        ]
        pyproject = (project / "pyproject.toml").read_text()
        assert f'name = "{names.distribution}"' in pyproject
        assert f'[project.entry-points."{names.group}"]\n"{name}" = "{names.package}:{names.class_name}"' in pyproject
        readme = (project / "README.md").read_text()
        assert "pip install -e ." in readme and "pytest" in readme and name in readme


def test_generated_code_is_lint_clean(workspace: Path) -> None:
    for kind, name in PLUGINS.items():
        project = workspace / plugin_names(name, kind).distribution
        for args in (["check", "."], ["format", "--check", "."]):
            result = subprocess.run([RUFF, *args], cwd=project, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, f"{project.name}: ruff {' '.join(args)}\n{result.stdout}{result.stderr}"


def test_the_generated_tests_pass_once_installed(workspace: Path) -> None:
    tests = [str(workspace / plugin_names(n, k).distribution / "tests") for k, n in PLUGINS.items()]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        env=_env(workspace / "site"),
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 15 and "failed" not in result.stdout, result.stdout


def test_plugins_lists_every_kind_with_documented_params(workspace: Path) -> None:
    result = _cli("plugins", "--json", site=workspace / "site")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    for kind, name in PLUGINS.items():
        row = rows[name]
        assert row["ok"] and row["version"] == "0.1.0", row
        assert row["group"] == plugin_names(name, kind).group.rsplit(".", 1)[-1]
        assert row["params"] and all(p["description"] for p in row["params"].values()), row
    assert rows["acme.gain"]["params"]["gain"]["default"] == 0.5


def test_the_schema_knows_the_new_parameters(workspace: Path) -> None:
    result = _cli("schema", site=workspace / "site")
    assert result.returncode == 0, result.stderr
    definitions = json.loads(result.stdout)["definitions"]
    gain = definitions["processor.acme.gain"]["properties"]
    assert gain["gain"]["default"] == 0.5 and "Factor applied" in gain["gain"]["description"]
    assert gain["applies_to"]["enum"] == ["input", "output", "both"]
    assert "speech_dbfs" in definitions["vad.acme.loud"]["properties"]
    assert "message_type" in definitions["action.acme.notice"]["properties"]


def test_a_misspelt_parameter_of_a_new_plugin_is_reported_at_its_line(workspace: Path, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("version: 1\nprocessors:\n  - id: quieter\n    type: acme.gain\n    gian: 0.5\n")
    result = _cli("validate", str(spec), site=workspace / "site")
    assert result.returncode == 1
    assert f"{spec}:5:5: processors[0].gian" in result.stdout and "did you mean 'gain'" in result.stdout


SPEC = """\
version: 1
ice: {servers: []}
transport: {audio_in_enabled: true, audio_out_enabled: true, audio_in_sample_rate: 16000, audio_out_sample_rate: 16000}
pipeline: {audio_in_sample_rate: 16000, audio_out_sample_rate: 16000}
vad: {type: acme.loud, speech_dbfs: -30, stop_secs: 0.3}
processors:
  - {id: echo, type: audio.echo}
  - {id: volume, type: acme.gain, gain: GAIN, applies_to: output}
events:
  on_client_ready:
    - {action: acme.notice, text: "welcome {session_id}"}
"""


@dataclass
class Heard:
    level_dbfs: float
    frequency: float
    rtvi_types: list[str]
    notices: list[dict[str, object]]
    exit_code: int
    log: str


async def _one_session(spec: Path, site: Path) -> Heard:
    """Serve ``spec``, send a 440 Hz tone for a while, keep what came back; then stop the server."""
    from runner.client.media import ToneSource

    async with cli_server(["run", str(spec)], spec.with_suffix(".log"), env={"PYTHONPATH": str(site)}) as server:
        listener = ListeningClient.create(audio_track=ToneSource(440.0, amplitude_dbfs=-12.0))
        await listener.client.connect(server.url + "/api/offer")
        try:
            await wait_until(lambda: listener.seconds > 0)
            heard = await listener.fresh_audio(1.0)
            await wait_until(lambda: "user-started-speaking" in listener.rtvi_types)
            await wait_until(lambda: any(_is_notice(m) for m in listener.app_messages))
        finally:
            await listener.client.disconnect()
        code = await server.stop()
        blocks = [rms_dbfs(block) for block in np.array_split(heard, 50)]  # 20 ms each
        return Heard(
            level_dbfs=float(np.median(blocks)),
            frequency=dominant_frequency(heard),
            rtvi_types=listener.rtvi_types,
            notices=[m for m in listener.app_messages if _is_notice(m)],
            exit_code=code,
            log=server.log(),
        )


@pytest.mark.timeout(90)
async def test_a_spec_using_all_three_validates_and_serves_them(workspace: Path, tmp_path: Path) -> None:
    specs = {}
    for label, gain in (("reference", "1.0"), ("quieter", "0.25")):
        specs[label] = tmp_path / f"{label}.yaml"
        specs[label].write_text(SPEC.replace("GAIN", gain))
    checked = _cli("validate", *map(str, specs.values()), site=workspace / "site")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # one after the other: two servers and two clients at once overload this 2-core machine
    reference = await _one_session(specs["reference"], workspace / "site")
    quieter = await _one_session(specs["quieter"], workspace / "site")
    for run in (reference, quieter):
        assert run.exit_code == 0 and "Traceback" not in run.log, run.log
        assert run.frequency == pytest.approx(440.0, abs=15)  # our own tone came back
        assert "user-started-speaking" in run.rtvi_types  # the VAD heard it as speech
        assert len(run.notices) == 1 and run.notices[0]["event"] == "on_client_ready", run.notices  # the action
        text = str(run.notices[0]["text"])
        assert text.startswith("welcome ") and len(text) > len("welcome ")
    # the processor: gain 0.25 is 12 dB below gain 1 through the same path
    assert quieter.level_dbfs - reference.level_dbfs == pytest.approx(-12.04, abs=1.5)


def _is_notice(message: object) -> bool:
    return isinstance(message, dict) and message.get("type") == "acme.notice"


async def wait_until(predicate: Callable[[], bool], within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling what the client collected
            await asyncio.sleep(0.05)


# -- names and refusals, in process -------------------------------------------------------------

NAME_PARTS = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)


@given(parts=st.lists(NAME_PARTS, min_size=1, max_size=4), seps=st.lists(st.sampled_from("._-"), min_size=3))
@example(parts=["acme", "reverse"], seps=["."])
def test_every_valid_name_maps_to_installable_names(parts: list[str], seps: list[str]) -> None:
    name = parts[0] + "".join(sep + part for sep, part in zip(seps, parts[1:], strict=False))
    for kind in KINDS:
        names = plugin_names(name, kind)
        assert names.name == name
        assert names.distribution == "pipeline-run-" + "-".join(parts)
        assert names.package == "pipeline_run_" + "_".join(parts) and names.package.isidentifier()
        assert names.class_name.isidentifier() and names.class_name[0].isupper()


@given(name=st.text(max_size=80))
@example(name="")
@example(name="Acme.reverse")
@example(name="acme..reverse")
@example(name="acme.reverse.")
@example(name="1acme")
@example(name="acme reverse")
@example(name="acme/reverse")
@example(name="a" * 65)
def test_any_other_name_is_refused_with_a_reason(name: str) -> None:
    if re.fullmatch(NAME_PATTERN, name) and len(name) <= 64:
        assert plugin_names(name).name == name
        return
    with pytest.raises(ScaffoldError) as error:
        plugin_names(name)
    message = str(error.value)
    assert ("acme.reverse" in message or "longer than" in message or "empty" in message) and "\n" not in message


def test_an_existing_directory_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(ScaffoldError, match="refusing to overwrite"):
        scaffold_plugin("acme.gain", "processor", target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"] and (target / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging folder left behind


def test_the_command_refuses_a_taken_name_and_a_bad_one(tmp_path: Path) -> None:
    taken = subprocess.run([CLI, "new", "plugin", "audio.echo"], cwd=tmp_path, capture_output=True, text=True)
    assert taken.returncode == 1 and "already installed" in taken.stderr and "pipeline" in taken.stderr
    bad = subprocess.run([CLI, "new", "plugin", "Acme Gain"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 1 and "invalid plugin name 'Acme Gain'" in bad.stderr
    assert "Traceback" not in taken.stderr + bad.stderr
    assert list(tmp_path.iterdir()) == []
