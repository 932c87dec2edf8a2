"""``reply`` and ``when``/``otherwise`` in a spec: loading, errors with positions, rendering, the schema."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from runner.actions import ReplyAction
from runner.actions.when import MISSING, EventMessage
from runner.plugins.discovery import PluginRegistry
from runner.spec import SpecError, generate_schema, parse_spec, render_config

ROUTING = """\
version: 1
events:
  on_client_message:
    - {action: log}
    - {when: {type: get-count}, action: reply, data: {count: 3}}
    - when: {type: [echo, repeat], data: {kind: {$in: [a, b]}}}
      action: reply
      data: $request.d
    - otherwise:
        - {action: reply, type: unknown, data: "no handler for {$request.t}"}
        - {action: log, level: warning}
  on_app_message:
    - {when: {message: {type: chat}}, action: log}
"""


def issues(text: str, registry: PluginRegistry) -> list[tuple[int, int, str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, registry, file="bad.yaml", env={})
    return [(i.line, i.col, i.path, i.message) for i in info.value.issues]


def test_routing_spec_loads_into_steps(registry: PluginRegistry) -> None:
    spec = parse_spec(ROUTING, registry, env={})
    steps = spec.events["on_client_message"]
    assert [(s.action, s.when is not None, s.otherwise) for s in steps] == [
        ("log", False, False),
        ("reply", True, False),
        ("reply", True, False),
        ("reply", False, True),
        ("log", False, True),
    ]
    assert steps[1].plugin is ReplyAction
    assert steps[2].when is not None and steps[2].when.source == {
        "type": ["echo", "repeat"],
        "data": {"kind": {"$in": ["a", "b"]}},
    }


def test_rendered_config_keeps_the_shape_and_loads_again(registry: PluginRegistry) -> None:
    spec = parse_spec(ROUTING, registry, env={})
    rendered = yaml.safe_load(render_config(spec))["events"]
    assert rendered["on_client_message"][1]["when"] == {"type": "get-count"}
    assert [list(e) for e in rendered["on_client_message"]][-1] == ["otherwise"]
    assert len(rendered["on_client_message"][-1]["otherwise"]) == 2
    again = parse_spec(render_config(spec), registry, env={})
    assert again.events == spec.events


def test_every_mistake_is_reported_with_its_position(registry: PluginRegistry) -> None:
    text = (
        "version: 1\n"  # 1
        "events:\n"
        "  on_client_message:\n"
        "    - {action: rply, data: 1}\n"
        "    - {when: {tpye: x}, action: reply, data: 1}\n"  # 5
        "    - {when: {data: {n: {$inn: [1]}}}, action: reply, data: $request.dd}\n"
        "    - {when: {type: z}, action: reply, data: {a: ['{$reqest.d}', $request.t.x]}}\n"
        "    - {wehn: {type: z}, action: log}\n"
        "    - otherwise:\n"
        "        - {action: reply, data: $request.d, when: {type: q}}\n"  # 10
        "      action: log\n"
        "    - {when: {type: late}, action: log}\n"
        "    - otherwise: [{action: log}]\n"
        "  on_app_message:\n"
        "    - {action: reply, data: 1}\n"  # 15
        "    - otherwize: [{action: log}]\n"
        "    - otherwise: {action: log}\n"
        "  on_client_connected:\n"
        "    - {when: {type: a}, action: log}\n"
        "  on_client_disconnected:\n"  # 20
        "    - otherwise: [{action: log}]\n"
    )
    assert issues(text, registry) == [
        (4, 16, "events.on_client_message[0].action", "unknown action type 'rply'; did you mean 'reply'?"),
        (5, 15, "events.on_client_message[1].when.tpye", "unknown key 'tpye'; did you mean 'type'?"),
        (6, 26, "events.on_client_message[2].when.data.n.$inn", "unknown operator '$inn'; did you mean '$in'?"),
        (
            6,
            61,
            "events.on_client_message[2].data",
            "'$request.dd': the request has no 'dd'; did you mean 'd'?",
        ),
        (7, 51, "events.on_client_message[3].data.a[0]", "unknown reference '{$reqest.d}'; did you mean '$request'?"),
        (7, 66, "events.on_client_message[3].data.a[1]", "'$request.t.x': request.t is a string, it has no 'x'"),
        (8, 8, "events.on_client_message[4].wehn", "unknown key 'wehn'; did you mean 'when'?"),
        (
            10,
            45,
            "events.on_client_message[5].otherwise[0].when",
            "no `when` inside `otherwise`: it runs only when nothing above matched",
        ),
        (
            11,
            7,
            "events.on_client_message[5].action",
            "an `otherwise` entry holds only its list: otherwise: [{action: ...}, ...]",
        ),
        (
            12,
            8,
            "events.on_client_message[6].when",
            "this `when` comes after `otherwise`, so it never runs: move `otherwise` last",
        ),
        (
            13,
            7,
            "events.on_client_message[7].otherwise",
            "a second `otherwise` (the first is at line 9); keep one, last",
        ),
        (
            15,
            7,
            "events.on_app_message[0]",
            "reply answers a client's request: list it under on_client_message, not on_app_message",
        ),
        (16, 7, "events.on_app_message[1].otherwize", "unknown key 'otherwize'; did you mean 'otherwise'?"),
        (
            17,
            7,
            "events.on_app_message[2].otherwise",
            "`otherwise` runs when no `when` above it matched, but this list has no `when` before it",
        ),
        (
            17,
            18,
            "events.on_app_message[2].otherwise",
            "otherwise takes a list of actions, e.g. otherwise: [{action: log}]",
        ),
        (
            19,
            8,
            "events.on_client_connected[0].when",
            "on_client_connected carries no message for `when` to match (it suits on_client_message, on_app_message)",
        ),
        (
            21,
            7,
            "events.on_client_disconnected[0].otherwise",
            "`otherwise` runs when no `when` above it matched, but this list has no `when` before it",
        ),
    ]


@pytest.mark.parametrize(
    ("when", "path", "message"),
    [
        ("get-count", "when", "when takes a mapping of type, data and/or message, e.g. when: {type: get-count}"),
        ("{}", "when", "an empty `when` matches nothing useful: give type, data or message"),
        ("{type: []}", "when.type", "give a type, or a non-empty list of types"),
        ("{type: 3}", "when.type", "Input should be a valid string or Input should be a valid list"),
        ("{data: {$exists: 1}}", "when.data.$exists", "$exists takes true or false"),
        ("{message: {a: {$in: [1], b: 2}}}", "when.message.a", "an operator stands alone: write {$in: ...} by itself"),
    ],
)
def test_when_mistakes(registry: PluginRegistry, when: str, path: str, message: str) -> None:
    text = f"version: 1\nevents:\n  on_client_message:\n    - {{when: {when}, action: log}}\n"
    got = issues(text, registry)
    assert [(p, m) for _, _, p, m in got] == [(f"events.on_client_message[0].{path}", message)]
    assert all(line == 4 for line, _, _, _ in got)


def schema_errors(schema: dict[str, Any], instance: Any) -> list[tuple[list[Any], str]]:
    validator = jsonschema.Draft7Validator(schema)
    out = []
    for error in validator.iter_errors(instance):
        messages = [error.message, *(sub.message for sub in error.context or [])]
        out.append((list(error.absolute_path), " | ".join(messages)))
    return out


def test_the_schema_knows_reply_when_and_otherwise(registry: PluginRegistry) -> None:
    schema = generate_schema(registry)
    assert schema_errors(schema, yaml.safe_load(ROUTING)) == []
    bad = {
        "events": {
            "on_client_message": [
                {"when": {"tpye": "x"}, "action": "reply", "data": 1},
                {"action": "reply"},
                {"otherwise": [{"action": "log"}], "action": "log"},
            ]
        }
    }
    got = schema_errors(schema, bad)
    assert (
        ["events", "on_client_message", 0, "when"],
        "Additional properties are not allowed ('tpye' was unexpected)",
    ) in got
    assert (["events", "on_client_message", 1], "'data' is a required property") in got
    assert any(p == ["events", "on_client_message", 2] and "'action' was unexpected" in m for p, m in got)


def test_the_readme_example_is_a_valid_spec() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    example = next(b for b in blocks if "otherwise:" in b and "action: reply" in b)
    registry = PluginRegistry.discover()
    spec = parse_spec("version: 1\n" + example, registry, env={})
    assert [s.otherwise for s in spec.events["on_client_message"]] == [False, False, False, True]
    assert schema_errors(generate_schema(registry), yaml.safe_load(example)) == []


def test_a_when_held_back_by_an_unset_variable_never_matches(registry: PluginRegistry) -> None:
    text = "version: 1\nevents:\n  on_client_message:\n    - {when: {data: {a: '${X}'}}, action: reply, data: 1}\n"
    spec = parse_spec(text, registry, env={}, skip_env=True)
    when = spec.events["on_client_message"][0].when
    assert when is not None  # not silently unconditional
    for message in [EventMessage("t", {"a": "${X}"}, None), EventMessage(MISSING, MISSING, MISSING)]:
        assert not when.matches(message)
    resolved = parse_spec(text, registry, env={"X": "1"}).events["on_client_message"][0].when
    assert resolved is not None and resolved.matches(EventMessage("t", {"a": "1"}, None))
