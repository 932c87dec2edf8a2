"""Errors: file:line:col: path: message, all at once, with did-you-mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.plugins.discovery import PluginRegistry
from runner.spec import SpecError, SpecIssue, load_spec, parse_spec


def issues(text: str, registry: PluginRegistry, env: dict[str, str] | None = None) -> list[SpecIssue]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, registry, file="bad.yaml", env=env or {})
    return info.value.issues


def test_issue_format() -> None:
    issue = SpecIssue("a.yaml", 3, 5, "server.prot", "unknown key")
    assert str(issue) == "a.yaml:3:5: server.prot: unknown key"
    assert str(SpecIssue("a.yaml", 1, 1, "", "empty")) == "a.yaml:1:1: empty"
    assert str(SpecIssue("a.yaml", 0, 0, "", "no such file")) == "a.yaml: no such file"


def test_four_problems_at_once(registry: PluginRegistry, data_dir: Path) -> None:
    path = data_dir / "four_problems.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(path, registry, env={})
    lines = str(info.value).splitlines()
    assert lines == [
        f"{path}:3:3: server.prot: unknown key 'prot'; did you mean 'port'?",
        f"{path}:4:17: server.max_sessions: Input should be a valid integer, unable to parse string as an integer",
        f"{path}:6:22: processors[0].type: unknown processor type 'audio.tonee'; did you mean 'audio.tone'?",
        f"{path}:10:17: ice.servers[0].username: environment variable SPEC_TEST_TURN_USER is not set",
    ]
    assert info.value.file == str(path)


def test_misspelt_keys_everywhere(registry: PluginRegistry) -> None:
    text = (
        "versoin: 1\n"
        "ice:\n"
        "  servers: [{urls: 'stun:x:1', usernme: u}]\n"
        "transport: {audio_in_enable: true}\n"
        "vad: {type: energy, treshold: 0.1}\n"
        "processors: [{id: t, type: audio.tone, frequncy: 1}]\n"
        "events: {on_client_connected: [{action: say, txt: hi}]}\n"
        "zzz: 1\n"
    )
    got = [(i.line, i.path, i.message) for i in issues(text, registry)]
    assert got == [
        (1, "versoin", "unknown key 'versoin'; did you mean 'version'?"),
        (3, "ice.servers[0].usernme", "unknown key 'usernme'; did you mean 'username'?"),
        (4, "transport.audio_in_enable", "unknown key 'audio_in_enable'; did you mean 'audio_in_enabled'?"),
        (5, "vad.treshold", "unknown key 'treshold'; did you mean 'threshold'?"),
        (6, "processors[0].frequncy", "unknown key 'frequncy'; did you mean 'frequency'?"),
        (7, "events.on_client_connected[0].text", "missing required key 'text'"),
        (7, "events.on_client_connected[0].txt", "unknown key 'txt'; did you mean 'text'?"),
        (8, "zzz", got[-1][2]),
    ]
    assert got[-1][2].startswith("unknown key 'zzz' (valid keys: version, server, ice,")


def test_unknown_plugins_suggest(registry: PluginRegistry) -> None:
    text = "vad: {type: enrgy}\nprocessors: [{id: a, type: audio.ech}]\nevents: {on_client_ready: [{action: sya}]}\n"
    got = [(i.path, i.message) for i in issues(text, registry)]
    assert got == [
        ("vad.type", "unknown vad type 'enrgy'; did you mean 'energy'?"),
        ("processors[0].type", "unknown processor type 'audio.ech'; did you mean 'audio.echo'?"),
        ("events.on_client_ready[0].action", "unknown action type 'sya'; did you mean 'say'?"),
    ]


def test_missing_plugin_keys(registry: PluginRegistry) -> None:
    text = "vad: {threshold: 1}\nprocessors: [{id: a}]\nevents: {on_client_ready: [{text: x}]}\n"
    got = [(i.path, i.message.split(" (")[0]) for i in issues(text, registry)]
    assert got == [
        ("vad", "missing required key 'type'"),
        ("processors[0]", "missing required key 'type'"),
        ("events.on_client_ready[0]", "missing required key 'action'"),
    ]


def test_unknown_event_suggests(registry: PluginRegistry) -> None:
    text = "events:\n  on_client_conected: [{action: log}]\n  whatever: []\n"
    got = [(i.line, i.col, i.path, i.message) for i in issues(text, registry)]
    assert got[0] == (
        2,
        3,
        "events.on_client_conected",
        "unknown event 'on_client_conected'; did you mean 'on_client_connected'?",
    )
    assert got[1][:3] == (3, 3, "events.whatever") and "known events: on_app_message" in got[1][3]


def test_unknown_processor_type_keeps_event_check_useful(registry: PluginRegistry) -> None:
    text = "processors: [{id: a, type: nope}]\nevents: {on_tone_started: [], on_tone_startd: []}\n"
    got = [i.path for i in issues(text, registry)]
    assert got == ["processors[0].type", "events.on_tone_startd"]


def test_wrong_types_and_ranges(registry: PluginRegistry) -> None:
    text = (
        "version: 2\n"
        "server: {port: 70000, keepalive_timeout_secs: 0}\n"
        "ice: {servers: [{urls: 5}]}\n"
        "processors:\n"
        "  - {id: t, type: audio.tone, frequency: -1, waveform: saw}\n"
        "  - just-a-string\n"
        "events: {on_client_ready: {action: log}}\n"
    )
    got = [(i.line, i.path) for i in issues(text, registry)]
    assert got == [
        (1, "version"),
        (2, "server.port"),
        (2, "server.keepalive_timeout_secs"),
        (3, "ice.servers[0].urls"),
        (5, "processors[0].frequency"),
        (5, "processors[0].waveform"),
        (6, "processors[1]"),
        (7, "events.on_client_ready"),
    ]
    urls = next(i for i in issues(text, registry) if i.path == "ice.servers[0].urls")
    assert "valid string" in urls.message and "valid list" in urls.message


def test_yaml_syntax_error_is_one_issue(registry: PluginRegistry) -> None:
    [issue] = issues("server:\n  port: [1, 2\n  host: x\n", registry)
    assert issue.file == "bad.yaml" and issue.line >= 2
    assert issue.message.startswith("YAML syntax error:")
    [issue] = issues("a: 1\n\tb: 2\n", registry)
    assert issue.message.startswith("YAML syntax error:")
    [issue] = issues("a: 1\n---\nb: 2\n", registry)
    assert "single document" in issue.message


def test_not_a_mapping(registry: PluginRegistry) -> None:
    assert "must be a mapping" in issues("- 1\n- 2\n", registry)[0].message
    assert "empty" in issues("# nothing\n", registry)[0].message


def test_unsupported_tag(registry: PluginRegistry) -> None:
    [issue] = issues("server: {host: !secret x}\n", registry)
    assert (issue.path, issue.message) == ("server.host", "unsupported tag '!secret'")


def test_missing_file(registry: PluginRegistry, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml", registry)
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: no such file"
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path, registry)
