"""``PIPELINE_RUN_<SECTION>__<KEY>`` overrides: every spec setting, validated like YAML, precedence kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import aiohttp
import annotated_types
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runner.plugins.discovery import PluginRegistry
from runner.settings import setting_variables, unknown_variables, variable_name
from runner.spec import SpecError, parse_spec, spec_data
from runner.spec.models import SpecDocument
from tests.support.cli_server import cli_server

CLI = str(Path(sys.executable).parent / "pipeline-run")
ECHO = Path(__file__).resolve().parents[2] / "pipelines" / "echo.yaml"
BASE = "version: 1\nserver:\n  port: 8000\n  cors_origins: ['https://yaml.example']\n"


def _field(loc: tuple[str, ...]) -> Any:
    model: Any = SpecDocument
    field = None
    for part in loc:
        field = model.model_fields[part]
        model = field.annotation
    return field


def _bounded(loc: tuple[str, ...]) -> st.SearchStrategy[Any] | None:
    """Valid values for an int/float/bool setting, from its own bounds; None for other kinds."""
    field = _field(loc)
    annotation = field.annotation
    if annotation is bool:
        return st.booleans()
    if annotation not in (int, float):
        return None
    low: float | None = None
    high: float | None = None
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Ge):
            low = float(meta.ge)  # type: ignore[arg-type]
        elif isinstance(meta, annotated_types.Gt):
            low = float(meta.gt) + 1  # type: ignore[arg-type, operator]
        elif isinstance(meta, annotated_types.Le):
            high = float(meta.le)  # type: ignore[arg-type]
        elif isinstance(meta, annotated_types.Lt):
            high = float(meta.lt) - 1  # type: ignore[arg-type, operator]
    low = -1000 if low is None else low
    high = low + 10_000 if high is None else high
    if annotation is int:
        return st.integers(int(low), int(high))
    return st.integers(int(low), int(high)).map(float)


SCALARS = {name: loc for name, loc in setting_variables().items() if _bounded(loc) is not None}


def _at(data: Any, loc: tuple[str, ...]) -> Any:
    for part in loc:
        data = data[part]
    return data


def test_every_section_setting_has_a_variable() -> None:
    names = setting_variables()
    for section in ("server", "ice", "codecs", "transport", "pipeline"):
        model = typing.cast(Any, SpecDocument.model_fields[section].annotation)
        for key in model.model_fields:
            assert variable_name((section, key)) in names
    assert names["PIPELINE_RUN_SERVER__LIMITS__MAX_JSON_DEPTH"] == ("server", "limits", "max_json_depth")
    assert len(set(names.values())) == len(names)


def test_env_beats_yaml_and_the_limit_reaches_server_limits(registry: PluginRegistry) -> None:
    env = {"PIPELINE_RUN_SERVER__PORT": "9000", "PIPELINE_RUN_SERVER__LIMITS__MAX_JSON_DEPTH": "16"}
    spec = parse_spec(BASE, registry, env=env)
    assert (spec.server.port, spec.server.limits.max_json_depth) == (9000, 16)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.data())
def test_a_scalar_override_reaches_the_spec(registry: PluginRegistry, data: Any) -> None:
    name = data.draw(st.sampled_from(sorted(SCALARS)))
    strategy = _bounded(SCALARS[name])
    assert strategy is not None
    value = data.draw(strategy)
    spec = parse_spec(BASE, registry, env={name: json.dumps(value)})
    assert _at(spec_data(spec), SCALARS[name]) == value


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(origins=st.lists(st.from_regex(r"https://[a-z]{1,12}\.example", fullmatch=True), max_size=4))
def test_a_list_override_is_json_and_replaces_the_yaml_list(registry: PluginRegistry, origins: list[str]) -> None:
    spec = parse_spec(BASE, registry, env={"PIPELINE_RUN_SERVER__CORS_ORIGINS": json.dumps(origins)})
    assert spec.server.cors_origins == origins


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(port=st.one_of(st.integers(max_value=0), st.integers(min_value=65536)))
@example(port=0)
def test_a_bad_value_names_its_variable(registry: PluginRegistry, port: int) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(BASE, registry, env={"PIPELINE_RUN_SERVER__PORT": str(port)})
    (issue,) = caught.value.issues
    assert issue.path == "server.port"
    assert f"PIPELINE_RUN_SERVER__PORT='{port}'" in issue.message


def test_undecodable_json_names_its_variable(registry: PluginRegistry) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(BASE, registry, env={"PIPELINE_RUN_SERVER__CORS_ORIGINS": "https://a.example"})
    assert "PIPELINE_RUN_SERVER__CORS_ORIGINS: must be JSON" in str(caught.value)


def test_a_section_given_as_json_is_checked_field_by_field(registry: PluginRegistry) -> None:
    variable = "PIPELINE_RUN_SERVER__LIMITS"
    with pytest.raises(SpecError) as caught:
        parse_spec(BASE, registry, env={variable: '{"max_json_depth": "deep"}'})
    assert f"{variable}=" in str(caught.value) and "limits.max_json_depth" in str(caught.value)


def test_yaml_errors_keep_their_positions_beside_overrides(registry: PluginRegistry) -> None:
    text = "version: 1\nserver:\n  port: 8000\npipeline:\n  allow_interruptions: maybe\n"
    with pytest.raises(SpecError) as caught:
        parse_spec(text, registry, env={"PIPELINE_RUN_SERVER__PORT": "9000"})
    (issue,) = caught.value.issues
    assert (issue.line, issue.path) == (5, "pipeline.allow_interruptions")


@given(name=st.sampled_from(sorted(setting_variables())), cut=st.integers(0, 1))
@example(name="PIPELINE_RUN_SERVER__PORT", cut=0)
def test_an_unknown_variable_is_reported_with_the_closest_name(name: str, cut: int) -> None:
    head, last = name.rsplit("__", 1)
    typo = f"{head}__{last[:-2] + last[-1] + last[-2]}" if cut == 0 or len(last) < 4 else f"{head}__{last}X"
    if typo == name:
        return
    (message,) = unknown_variables({typo: "1", name.replace("PIPELINE_RUN_", "OTHER_"): "1"})
    assert typo in message and "did you mean" in message


def test_known_variables_are_not_reported() -> None:
    env = {"PIPELINE_RUN_PORT": "1", "PIPELINE_RUN_LOG_FORMAT": "json", "PIPELINE_RUN_SERVER__PORT": "2"}
    assert unknown_variables(env) == []


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_RUN_")} | env
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=full, timeout=60)


def test_config_shows_overrides_and_warns_about_unknown_names(tmp_path: Path) -> None:
    spec = tmp_path / "bot.yaml"
    spec.write_text(BASE, encoding="utf-8")
    result = _run(
        "config",
        str(spec),
        env={
            "PIPELINE_RUN_SERVER__LIMITS__MAX_JSON_DEPTH": "16",
            "PIPELINE_RUN_TRANSPORT__AUDIO_OUT_SAMPLE_RATE": "48000",
            "PIPELINE_RUN_SERVER__PROT": "1",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "max_json_depth: 16" in result.stdout and "audio_out_sample_rate: 48000" in result.stdout
    assert "port: 8000" in result.stdout
    assert "PIPELINE_RUN_SERVER__PROT; did you mean 'PIPELINE_RUN_SERVER__PORT'" in result.stderr


def test_config_reports_a_bad_override_and_fails(tmp_path: Path) -> None:
    spec = tmp_path / "bot.yaml"
    spec.write_text(BASE, encoding="utf-8")
    result = _run("config", str(spec), env={"PIPELINE_RUN_PIPELINE__AUDIO_OUT_SAMPLE_RATE": "96000"})
    assert result.returncode == 1
    assert "pipeline.audio_out_sample_rate" in result.stderr
    assert "PIPELINE_RUN_PIPELINE__AUDIO_OUT_SAMPLE_RATE='96000'" in result.stderr


async def _posted(url: str, size: int) -> tuple[int, str]:
    offer = {"sdp": "v=0\r\n" + "a" * size, "type": "offer"}
    async with aiohttp.ClientSession() as http, http.post(url + "/api/offer", json=offer) as resp:
        return resp.status, await resp.text()


async def test_precedence_flag_over_env_over_yaml_in_a_served_bot(tmp_path: Path) -> None:
    """The env's body limit and port lose to nothing but flags: --port wins, the limit applies."""
    spec = ECHO
    env = {"PIPELINE_RUN_SERVER__LIMITS__MAX_BODY_BYTES": "2048", "PIPELINE_RUN_SERVER__PORT": "1"}
    async with cli_server([str(spec)], tmp_path / "log.txt", env=env) as server:
        assert not server.url.endswith(":1")  # the --port flag beat the environment
        status, body = await _posted(server.url, 4096)
        assert status == 413 and "2048" in body
        status, _ = await _posted(server.url, 100)
        assert status == 400  # small enough to be read; then rejected as not SDP
