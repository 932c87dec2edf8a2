"""Loading specs: YAML semantics, the validated Spec, render_config, the real plugins."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from runner.plugins.discovery import PluginRegistry
from runner.processors.base import FrameProcessor
from runner.spec import (
    IceSettings,
    ProcessorSpec,
    ServerSettings,
    Spec,
    SpecError,
    SpecLoader,
    load_spec,
    parse_spec,
    render_config,
)

from .plugins import Echo, Energy, EnergyParams, Log, Recorder, Say, Tone, ToneParams

ROOT = Path(__file__).resolve().parents[2]
VALID_ENV = {"TURN_PASS": "hunter2"}


def test_valid_spec(registry: PluginRegistry, data_dir: Path) -> None:
    spec = load_spec(data_dir / "valid.yaml", registry, env=VALID_ENV)
    assert isinstance(spec, Spec)
    assert spec.source == str(data_dir / "valid.yaml")
    assert spec.server == ServerSettings(host="0.0.0.0", port=7861, max_sessions=4)
    assert spec.ice.servers[0].urls == ["stun:stun.example.org:3478"]
    assert spec.ice.servers[1].username == "bot"
    cred = spec.ice.servers[1].credential
    assert isinstance(cred, SecretStr) and cred.get_secret_value() == "hunter2"
    assert spec.ice.host_addresses == ["127.0.0.1", "::1"]
    assert spec.codecs.audio == ["opus", "PCMU/8000"]
    assert spec.codecs.video == ["VP8"]
    assert spec.transport.audio_out_sample_rate == 24000
    assert spec.pipeline.allow_interruptions is False
    assert spec.vad is not None
    assert (spec.vad.type, spec.vad.plugin) == ("energy", Energy)
    assert spec.vad.params == EnergyParams(threshold=0.7)

    assert [(p.id, p.type, p.plugin) for p in spec.processors] == [
        ("tone", "audio.tone", Tone),
        ("echo", "audio.echo", Echo),
        ("rec.main", "audio.recorder", Recorder),
    ]
    tone = spec.processor("tone")
    assert isinstance(tone, ProcessorSpec)
    assert isinstance(tone.params, ToneParams)
    assert (tone.params.frequency, tone.params.waveform) == (880.0, "square")
    assert issubclass(tone.plugin, FrameProcessor)

    hello = spec.events["on_client_connected"]
    assert [(a.action, a.plugin) for a in hello] == [("say", Say), ("log", Log)]
    action, plugin, params = hello[0][:3]  # then its `when` (None here) and `otherwise` flag
    assert (action, plugin) == ("say", Say)
    assert params.text == "Hello, that costs $5"  # type: ignore[attr-defined]
    assert list(spec.events) == ["on_client_connected", "on_tone_started", "on_client_disconnected"]


def test_defaults(registry: PluginRegistry) -> None:
    spec = parse_spec("version: 1\n", registry, env={})
    assert spec.server.host == "127.0.0.1" and spec.server.port == 7860
    assert spec.server.cors_origins == ["*"] and spec.server.max_sessions == 32
    assert spec.server.keepalive_timeout_secs == 5.0 and spec.server.connect_timeout_secs == 30.0
    assert spec.ice == IceSettings(servers=[], host_addresses=None, advertised_address=None)
    assert spec.pipeline.audio_in_sample_rate == 16000 and spec.pipeline.audio_out_sample_rate == 24000
    assert spec.vad is None and spec.processors == [] and spec.events == {}


def test_yaml_11_booleans_stay_strings(registry: PluginRegistry) -> None:
    for word in ("yes", "no", "on", "off", "y", "n", "Yes", "OFF"):
        assert yaml.load(f"a: {word}", Loader=SpecLoader) == {"a": word}
    assert yaml.load("a: [true, False, TRUE]", Loader=SpecLoader) == {"a": [True, False, True]}
    spec = parse_spec("events:\n  on_client_connected: [{action: say, text: yes}]\n", registry, env={})
    assert spec.events["on_client_connected"][0].params.text == "yes"  # type: ignore[attr-defined]


def test_on_key_stays_a_string(registry: PluginRegistry) -> None:
    assert yaml.load("on: 1\noff: 2", Loader=SpecLoader) == {"on": 1, "off": 2}
    with pytest.raises(SpecError) as info:
        parse_spec("events:\n  on: [{action: log}]\n", registry, env={})
    [issue] = info.value.issues
    assert issue.path == "events.on"
    assert "unknown event 'on'" in issue.message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0777", "0777"),
        ("0o17", 15),
        ("0x1f", 31),
        ("-12", -12),
        ("1_000", "1_000"),
        ("1:20", "1:20"),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".inf", float("inf")),
        ("2001-12-14", "2001-12-14"),
        ("~", None),
        ("null", None),
        ("", None),
        ("'123'", "123"),
        ("!!str 12", "12"),
    ],
)
def test_core_schema_scalars(text: str, value: object) -> None:
    assert yaml.load(f"a: {text}", Loader=SpecLoader) == {"a": value}


def test_leading_zero_still_coerces_for_int_fields(registry: PluginRegistry) -> None:
    spec = parse_spec("server: {port: 08080}\n", registry, env={})
    assert spec.server.port == 8080


def test_loader_rejects_duplicate_keys() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'a'"):
        yaml.load("a: 1\nb: 2\na: 3\n", Loader=SpecLoader)


def test_duplicate_keys_in_spec(registry: PluginRegistry) -> None:
    text = "server:\n  port: 1\n  host: x\n  port: 2\n"
    with pytest.raises(SpecError) as info:
        parse_spec(text, registry, file="d.yaml", env={})
    [issue] = info.value.issues
    assert (issue.line, issue.col, issue.path) == (4, 3, "server.port")
    assert issue.message == "duplicate key 'port' (first defined at line 2, column 3)"


def test_aliases_are_followed(registry: PluginRegistry) -> None:
    text = "x-tone: &tone {type: audio.tone, frequency: 300}\n"
    with pytest.raises(SpecError, match="unknown key 'x-tone'"):
        parse_spec(text, registry, env={})
    text = "processors:\n  - &t {id: a, type: audio.tone, frequency: 300}\n  - {id: b, type: audio.echo}\n"
    assert parse_spec(text, registry, env={}).processors[0].params.frequency == 300  # type: ignore[attr-defined]


def test_ice_servers_null_is_refused(registry: PluginRegistry) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec("ice: {servers: null}\n", registry, env={})
    assert "Google" in info.value.issues[0].message


def test_ice_addresses_and_urls_checked(registry: PluginRegistry) -> None:
    text = "ice:\n  servers: [{urls: http://x}]\n  host_addresses: [localhost]\n  advertised_address: 1.2.3.4\n"
    with pytest.raises(SpecError) as info:
        parse_spec(text, registry, env={})
    assert [i.path for i in info.value.issues] == ["ice.servers[0].urls", "ice.host_addresses"]


def test_codecs(registry: PluginRegistry) -> None:
    spec = parse_spec("codecs: {audio: [OPUS/48000/2, pcma, g722], video: [h264, VP8]}\n", registry, env={})
    assert spec.codecs.audio == ["opus/48000/2", "PCMA", "G722"]
    assert spec.codecs.video == ["H264", "VP8"]
    with pytest.raises(SpecError) as info:
        parse_spec("codecs: {audio: [opus, mp3, PCMU/16000], video: [rtx]}\n", registry, env={})
    issues = info.value.issues
    assert [i.path for i in issues] == ["codecs.audio[1]", "codecs.audio[2]", "codecs.video[0]"]
    assert "aiortc supports: " in issues[0].message and "PCMU" in issues[0].message
    assert "PCMU/8000" in issues[1].message


def test_processor_ids(registry: PluginRegistry) -> None:
    text = "processors:\n  - {type: audio.echo}\n  - {id: 9x, type: audio.echo}\n  - {id: a, type: audio.echo}\n"
    text += "  - {id: a, type: audio.echo}\n"
    with pytest.raises(SpecError) as info:
        parse_spec(text, registry, env={})
    got = [(i.line, i.path, i.message.split(" (")[0].split(":")[0]) for i in info.value.issues]
    assert got == [
        (2, "processors[0]", "missing required key 'id'"),
        (3, "processors[1].id", "invalid id '9x'"),
        (5, "processors[3].id", "duplicate processor id 'a'"),
    ]


def test_processor_events_allowed_only_when_used(registry: PluginRegistry) -> None:
    text = "processors: [{id: t, type: audio.tone}]\nevents: {on_tone_started: [{action: log}]}\n"
    assert list(parse_spec(text, registry, env={}).events) == ["on_tone_started"]
    with pytest.raises(SpecError, match="unknown event 'on_tone_started'"):
        parse_spec("events: {on_tone_started: [{action: log}]}\n", registry, env={})
    for name in ("on_app_message", "on_pipeline_finished", "on_client_ready"):
        parse_spec(f"events: {{{name}: [{{action: end}}]}}\n", registry, env={})


def test_render_config_masks_secrets(registry: PluginRegistry, data_dir: Path) -> None:
    spec = load_spec(data_dir / "valid.yaml", registry, env=VALID_ENV)
    text = render_config(spec)
    assert "hunter2" not in text and "k-123" not in text and "t0k3n" not in text
    data = yaml.safe_load(text)
    assert data["ice"]["servers"][1]["credential"] == "********"
    assert data["processors"][0]["api_key"] == "********"
    assert data["processors"][2]["token"] == "********"
    assert data["ice"]["servers"][1]["username"] == "bot"
    assert data["server"]["port"] == 7861
    assert data["vad"]["type"] == "energy" and data["vad"]["threshold"] == 0.7
    assert data["events"]["on_client_connected"][0] == {"action": "say", "text": "Hello, that costs $5"}
    assert list(data) == ["version", "server", "ice", "codecs", "transport", "pipeline", "vad", "processors", "events"]


def test_render_config_round_trips_quoting(registry: PluginRegistry) -> None:
    spec = parse_spec("events: {on_client_connected: [{action: say, text: 'on'}]}\n", registry, env={})
    assert "text: 'on'" in render_config(spec)


def test_echo_pipeline_with_test_plugins(registry: PluginRegistry) -> None:
    path = ROOT / "pipelines" / "echo.yaml"
    assert path.read_text().startswith("# yaml-language-server: $schema=../schemas/pipeline.schema.json\n")
    spec = load_spec(path, registry, env={})
    assert [(p.id, p.type) for p in spec.processors] == [("echo", "audio.echo")]
    assert spec.ice.servers == [] and spec.ice.host_addresses is None
    assert (spec.server.host, spec.server.port) == ("127.0.0.1", 7860)
    assert [a.action for a in spec.events["on_client_connected"]] == ["log"]
    assert [(a.action, a.params.data) for a in spec.events["on_client_message"]] == [("reply", "$request.d")]  # type: ignore[attr-defined]
    assert [a.action for a in spec.events["on_client_disconnected"]] == ["end"]


def test_real_plugins_load_every_pipeline() -> None:
    registry = PluginRegistry.discover()
    if registry.broken():
        pytest.skip("broken plugins: " + "; ".join(f"{p.display_name}: {p.error}" for p in registry.broken()))
    spec = load_spec(ROOT / "pipelines" / "echo.yaml", registry, env={})
    assert spec.processors[0].plugin is registry.processor("audio.echo")
    assert render_config(spec)
