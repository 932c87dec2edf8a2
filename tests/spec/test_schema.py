"""The published draft-07 JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from runner.plugins.discovery import PluginRegistry
from runner.spec import SCHEMA_PATH, check_schema_file, find_schema_path, generate_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def schema(registry: PluginRegistry) -> dict[str, Any]:
    return generate_schema(registry)


def errors(schema: dict[str, Any], instance: Any) -> list[tuple[list[Any], str]]:
    validator = jsonschema.Draft7Validator(schema)
    found = []
    for error in validator.iter_errors(instance):
        messages = [error.message, *(sub.message for sub in error.context or [])]
        found.append((list(error.absolute_path), " | ".join(messages)))
    return found


def test_meta_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "$defs" not in json.dumps(schema)
    assert schema["additionalProperties"] is False


def test_valid_spec_validates(schema: dict[str, Any], data_dir: Path) -> None:
    instance = yaml.safe_load((data_dir / "valid.yaml").read_text())
    assert errors(schema, instance) == []
    assert errors(schema, {"version": 1, "vad": None}) == []


def test_processor_dispatch(schema: dict[str, Any]) -> None:
    items = schema["properties"]["processors"]["items"]
    assert items["properties"]["type"]["enum"] == ["audio.echo", "audio.recorder", "audio.tone"]
    assert items["allOf"][2] == {
        "if": {"properties": {"type": {"const": "audio.tone"}}, "required": ["type"]},
        "then": {"$ref": "#/definitions/processor.audio.tone"},
    }
    branch = schema["definitions"]["processor.audio.tone"]
    assert branch["additionalProperties"] is False
    assert {"id", "type", "frequency", "volume"} <= set(branch["properties"])
    assert branch["properties"]["frequency"]["description"] == "Tone frequency in Hz."
    assert schema["definitions"]["processor.audio.recorder"]["required"] == ["id", "type", "path"]
    assert schema["definitions"]["action"]["properties"]["action"]["enum"] == ["end", "log", "reply", "say"]
    assert schema["properties"]["vad"]["properties"]["type"]["enum"] == ["energy"]


def test_wrong_processor_param_is_reported_at_the_param(schema: dict[str, Any]) -> None:
    instance = {
        "processors": [
            {"id": "a", "type": "audio.tone", "frequency": 30000},
            {"id": "b", "type": "audio.echo", "frequncy": 1},
        ],
        "vad": {"type": "energy", "threshold": 3},
        "events": {"on_client_ready": [{"action": "say"}]},
    }
    got = errors(schema, instance)
    paths = [path for path, _ in got]
    assert ["processors", 0, "frequency"] in paths
    assert (
        "30000 is greater than the maximum of 20000"
        in dict((tuple(p), m) for p, m in got)[("processors", 0, "frequency")]
    )
    assert any(p == ["processors", 1] and "'frequncy' was unexpected" in m for p, m in got)
    assert ["vad", "threshold"] in paths
    assert any(p == ["events", "on_client_ready", 0] and "'text' is a required property" in m for p, m in got)


def test_unknown_type_and_event(schema: dict[str, Any]) -> None:
    got = errors(schema, {"processors": [{"id": "a", "type": "nope"}], "events": {"on_nothing": []}, "on": 1})
    assert got == [
        ([], "Additional properties are not allowed ('on' was unexpected)"),
        (["processors", 0, "type"], "'nope' is not one of ['audio.echo', 'audio.recorder', 'audio.tone']"),
        (["events"], "Additional properties are not allowed ('on_nothing' was unexpected)"),
    ]


def test_events_list_every_known_event(schema: dict[str, Any]) -> None:
    events = schema["properties"]["events"]
    assert events["additionalProperties"] is False
    assert {"on_client_connected", "on_app_message", "on_pipeline_finished", "on_tone_started"} <= set(
        events["properties"]
    )
    assert events["properties"]["on_client_ready"]["items"] == {
        "if": {"type": "object", "required": ["otherwise"]},
        "then": {"$ref": "#/definitions/otherwise"},
        "else": {"$ref": "#/definitions/action"},
    }


def test_env_references_accepted_for_typed_leaves(schema: dict[str, Any]) -> None:
    instance = {
        "server": {"port": "${PORT}", "static_page": "${STATIC:-true}", "host": "${HOST}"},
        "transport": {"audio_in_channels": "${CH}"},
        "processors": [{"id": "t", "type": "audio.tone", "frequency": "${FREQ:?needed}"}],
    }
    assert errors(schema, instance) == []
    assert errors(schema, {"server": {"port": "ninety"}})


def test_schema_text_is_stable(registry: PluginRegistry) -> None:
    text = schema_text(registry)
    assert text.endswith("}\n") and text == schema_text(registry)
    assert json.loads(text) == generate_schema(registry)
    assert list(json.loads(text)) == sorted(json.loads(text))


def test_check_schema_file(registry: PluginRegistry, tmp_path: Path) -> None:
    path = tmp_path / "pipeline.schema.json"
    assert "does not exist" in (check_schema_file(path, registry) or "")
    path.write_text(schema_text(registry))
    assert check_schema_file(path, registry) is None
    path.write_text(schema_text(registry).replace("Tone frequency in Hz.", "old text"))
    message = check_schema_file(path, registry) or ""
    assert "stale" in message and "-" in message and "+" in message and "Tone frequency" in message


def test_find_schema_path() -> None:
    assert SCHEMA_PATH == Path("schemas/pipeline.schema.json")
    assert find_schema_path(ROOT / "pipelines") == ROOT / SCHEMA_PATH


def test_checked_in_schema_is_fresh() -> None:
    registry = PluginRegistry.discover()
    if registry.broken():
        pytest.skip("broken plugins: " + "; ".join(f"{p.display_name}: {p.error}" for p in registry.broken()))
    assert check_schema_file(ROOT / SCHEMA_PATH, registry) is None
    schema = json.loads((ROOT / SCHEMA_PATH).read_text())
    for path in sorted((ROOT / "pipelines").glob("*.yaml")):
        assert errors(schema, yaml.safe_load(path.read_text())) == [], path.name


def test_alias_spellings_are_valid_keys_in_the_schema() -> None:
    """What `validate` accepts, the editor schema accepts: VAD `threshold` is `confidence`."""
    real = generate_schema(PluginRegistry.discover())
    spec = {"version": 1, "vad": {"type": "energy", "threshold": 0.5}}
    assert errors(real, spec) == []
    assert errors(real, {"version": 1, "vad": {"type": "energy", "threshhold": 0.5}})
