"""``${VAR}`` interpolation: the strict compose/Vector subset."""

from __future__ import annotations

import pytest

from runner.plugins.discovery import PluginRegistry
from runner.spec import SpecError, parse_spec
from runner.spec.interpolate import interpolate

ENV = {"HOST": "example.org", "EMPTY": "", "PORT": "9000", "MULTI": "a\nb"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${HOST}", "example.org"),
        ("turn:${HOST}:3478", "turn:example.org:3478"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${HOST:-fallback}", "example.org"),
        ("${MISSING-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${MISSING:-}", ""),
        ("costs $$5", "costs $5"),
        ("$${HOST}", "${HOST}"),
        ("$HOST stays", "$HOST stays"),
        ("price $5 and a$", "price $5 and a$"),
        ("${MISSING:-a:b-c}", "a:b-c"),
        ("no dollars", "no dollars"),
    ],
)
def test_expansion(text: str, expected: str) -> None:
    result = interpolate(text, ENV)
    assert result.problems == []
    assert result.text == expected


def test_unset_is_an_error() -> None:
    result = interpolate("x ${MISSING} y ${OTHER}", ENV)
    assert [(p.name, p.offset) for p in result.problems] == [("MISSING", 2), ("OTHER", 15)]
    assert "MISSING is not set" in result.problems[0].message


def test_required_with_message() -> None:
    assert interpolate("${MISSING:?set it please}", ENV).problems[0].message == "MISSING: set it please"
    assert interpolate("${EMPTY:?no empty}", ENV).problems[0].message == "EMPTY: no empty"
    assert interpolate("${EMPTY?unset only}", ENV).problems == []
    assert interpolate("${HOST:?x}", ENV).text == "example.org"


def test_invalid_reference() -> None:
    result = interpolate("${1BAD}", ENV)
    assert result.problems and "invalid reference" in result.problems[0].message
    assert interpolate("${UNCLOSED", ENV).problems


def test_skip_env_leaves_references() -> None:
    result = interpolate("${MISSING}/${HOST}/${MISSING2:?m}", ENV, skip_env=True)
    assert result.problems == []
    assert result.text == "${MISSING}/example.org/${MISSING2:?m}"
    assert result.unresolved == ["MISSING", "MISSING2"]


def test_multiline_value_is_flagged() -> None:
    assert interpolate("${MULTI}", ENV).multiline == [(0, "MULTI")]


# ---------------------------------------------------------------- through the loader


def test_every_missing_variable_reported_at_its_position(registry: PluginRegistry) -> None:
    text = (
        "version: 1\n"
        "server:\n"
        "  host: ${HOST_A}\n"
        "  port: ${PORT_B}\n"
        "ice:\n"
        "  servers:\n"
        "    - urls: turn:x:1\n"
        "      username: 'user-${USER_C}'\n"
        '      credential: "${PASS_D:?set PASS_D}"\n'
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text, registry, file="s.yaml", env={})
    got = [(i.line, i.col, i.path) for i in info.value.issues]
    assert got == [
        (3, 9, "server.host"),
        (4, 9, "server.port"),
        (8, 23, "ice.servers[0].username"),
        (9, 20, "ice.servers[0].credential"),
    ]
    messages = [i.message for i in info.value.issues]
    assert "HOST_A is not set" in messages[0]
    assert messages[3] == "PASS_D: set PASS_D"


def test_whole_reference_in_typed_field_is_coerced(registry: PluginRegistry) -> None:
    # (in flow style `{...}` a plain ${VAR} would need quotes; block style takes it bare)
    text = "version: 1\nserver:\n  port: ${PORT}\n  static_page: ${STATIC}\ntransport:\n  audio_in_enabled: ${IN}\n"
    spec = parse_spec(text, registry, env={"PORT": "9000", "STATIC": "false", "IN": "true"})
    assert spec.server.port == 9000
    assert spec.server.static_page is False
    assert spec.transport.audio_in_enabled is True


def test_plugin_params_are_interpolated(registry: PluginRegistry) -> None:
    text = "processors:\n  - {id: t, type: audio.tone, frequency: '${FREQ:-220}'}\n"
    spec = parse_spec(text, registry, env={})
    assert spec.processors[0].params.frequency == 220.0  # type: ignore[attr-defined]


def test_dollar_escape_in_spec(registry: PluginRegistry) -> None:
    text = "events:\n  on_client_connected: [{action: say, text: 'only $$5 and $HOME'}]\n"
    spec = parse_spec(text, registry, env={"HOME": "/root"})
    assert spec.events["on_client_connected"][0].params.text == "only $5 and $HOME"  # type: ignore[attr-defined]


def test_newline_rejected_in_single_line_scalar(registry: PluginRegistry) -> None:
    text = (
        "server:\n  host: ${MULTI}\n"
        "events:\n  on_client_connected:\n    - action: say\n      text: |\n        ${MULTI}\n"
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text, registry, file="s.yaml", env={"MULTI": "a\nb"})
    [issue] = info.value.issues
    assert (issue.line, issue.path) == (2, "server.host")
    assert "line break" in issue.message


def test_newline_allowed_in_block_scalar(registry: PluginRegistry) -> None:
    text = "events:\n  on_client_connected:\n    - action: say\n      text: |\n        ${MULTI}\n"
    spec = parse_spec(text, registry, env={"MULTI": "a\nb"})
    assert spec.events["on_client_connected"][0].params.text == "a\nb\n"  # type: ignore[attr-defined]


def test_keys_and_non_strings_are_not_interpolated(registry: PluginRegistry) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec("${KEY}: 1\n", registry, env={"KEY": "version"})
    assert "unknown key '${KEY}'" in info.value.issues[0].message


def test_skip_env_validates_the_rest(registry: PluginRegistry) -> None:
    text = (
        "server: {port: '${PORT}', host: '${HOST}'}\n"
        "processors:\n"
        "  - {id: t, type: audio.tone, frequency: '${FREQ}'}\n"
        "  - {id: r, type: audio.recorder, path: '${REC_PATH}'}\n"
    )
    spec = parse_spec(text, registry, env={}, skip_env=True)
    assert spec.server.host == "${HOST}"
    assert [p.id for p in spec.processors] == ["t", "r"]
    with pytest.raises(SpecError) as info:
        parse_spec(text.replace("frequency: '${FREQ}'", "frequncy: 1"), registry, env={}, skip_env=True)
    assert [i.path for i in info.value.issues] == ["processors[0].frequncy"]
