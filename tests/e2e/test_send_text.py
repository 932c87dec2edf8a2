"""RTVI ``send-text`` and ``metrics`` against ``pipelines/voice.yaml``, from a real aiortc client.

* typed text gets the same answer as spoken text: the turn (``user-llm-text``), the reply text
  (``bot-llm-text``, ``bot-output``) and reply audio; ``run_immediately: false`` text joins the
  next turn; a malformed ``send-text`` gets ``error-response`` and the session goes on;
* with ``pipeline.enable_metrics`` the client gets ``metrics`` messages naming the STT, the
  responder and the TTS with positive values (and ``bot-ready`` says ``metrics: true``); without
  it, none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runner.build import make_bot
from tests.e2e.speech import VOICE_SPEC, VoicePeer, load_voice_spec
from tests.support.server import RunningServer, start_test_server

pytest.importorskip("pipeline_run_tts_espeak")
pytest.importorskip("pipeline_run_stt_pocketsphinx")
pytest.importorskip("pipeline_run_vad_silero")
pytest.importorskip("pipeline_run_llm_rules")

pytestmark = pytest.mark.timeout(120)

NAME_REPLY = "My name is Pipeline Bot."


def _is(message: Any, msg_type: str) -> bool:
    return isinstance(message, dict) and message.get("label") == "rtvi-ai" and message.get("type") == msg_type


def _text(message: dict[str, Any]) -> str:
    data = message.get("data")
    return str(data.get("text", "")) if isinstance(data, dict) else ""


async def _serve(metrics: bool, tmp_path: Path) -> RunningServer:
    path = VOICE_SPEC
    if metrics:
        text = VOICE_SPEC.read_text().replace(
            "  allow_interruptions: true", "  enable_metrics: true\n  allow_interruptions: true"
        )
        path = tmp_path / "voice.yaml"
        path.write_text(text)
    spec = load_voice_spec(path)
    assert spec.pipeline.enable_metrics is metrics
    return await start_test_server(make_bot(spec), host_addresses=["127.0.0.1"], ice_servers=[])


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await _serve(False, tmp_path)
    try:
        yield running
    finally:
        await running.runner.cleanup()


@pytest.fixture
async def peer(server: RunningServer) -> AsyncIterator[VoicePeer]:
    async with VoicePeer(server.url) as client:
        await client.connect()
        await client.wait_open()
        yield client


async def test_typed_question_gets_a_spoken_answer(peer: VoicePeer) -> None:
    # no client-ready: no greeting, so the answer is the only speech
    peer.send_rtvi("send-text", {"content": "what is your name", "options": {"run_immediately": True}}, "t1")
    turn = await peer.wait_for(lambda m: _is(m, "user-llm-text"), within=20)
    assert _text(turn) == "what is your name"
    await peer.wait_for(lambda m: _is(m, "bot-llm-text") and "My name is" in _text(m), within=20)
    output = await peer.wait_for(lambda m: _is(m, "bot-output") and "My name is" in _text(m), within=20)
    assert output["data"]["spoken"] is True
    await peer.wait_for(lambda m: _is(m, "bot-stopped-speaking"), within=30)
    assert peer.first_speech_after(0.0) is not None, "no reply audio reached the client"
    assert not peer.rtvi("error-response")
    assert not peer.rtvi("metrics"), "metrics were sent with enable_metrics off"


async def test_text_held_back_joins_the_next_text(peer: VoicePeer) -> None:
    peer.send_rtvi("send-text", {"content": "what is", "options": {"run_immediately": False}}, "t1")
    peer.send_rtvi("send-text", {"content": "your name"}, "t2")
    turn = await peer.wait_for(lambda m: _is(m, "user-llm-text"), within=20)
    assert _text(turn) == "what is your name"
    await peer.wait_for(lambda m: _is(m, "bot-output") and "My name is" in _text(m), within=20)
    assert len(peer.rtvi("user-llm-text")) == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("hello", "send-text needs data"),
        ({"content": 42}, "'content' must be a string, not int"),
        ({"content": "hi", "options": "fast"}, "'options' must be an object"),
        ({"content": "hi", "options": {"run_immediately": "yes"}}, "'run_immediately' must be true or false"),
    ],
)
async def test_malformed_send_text_is_answered_and_the_session_goes_on(peer: VoicePeer, data: Any, reason: str) -> None:
    peer.send_rtvi("send-text", data, "bad")
    answer = await peer.wait_rtvi("error-response", "bad", within=20)
    assert reason in answer["data"]["error"]
    peer.send_rtvi("send-text", {"content": "what is your name"}, "good")
    await peer.wait_for(lambda m: _is(m, "bot-output") and "My name is" in _text(m), within=20)
    assert [_text(m) for m in peer.rtvi("user-llm-text")] == ["what is your name"]


async def test_metrics_name_stt_responder_and_tts_when_enabled(tmp_path: Path) -> None:
    server = await _serve(True, tmp_path)
    try:
        async with VoicePeer(server.url) as client:
            await client.connect()
            await client.wait_open()
            ready = await client.wait_rtvi("bot-ready", client.send_client_ready(), within=20)
            assert ready["data"]["capabilities"]["metrics"] is True
            await client.wait_for(lambda m: _is(m, "bot-stopped-speaking"), within=30)  # the greeting
            await client.say("hello")
            await client.wait_for(lambda m: _is(m, "user-transcription"), within=30)
            await client.wait_for(lambda m: _is(m, "bot-llm-text"), within=30)
            await client.wait_for(lambda m: _is(m, "bot-tts-text") and "help" in _text(m), within=30)
            seen: dict[tuple[str, str], list[float]] = {}
            for message in client.rtvi("metrics"):
                for kind, entries in message["data"].items():
                    for entry in entries:
                        seen.setdefault((kind, entry["processor"]), []).append(entry["value"])
    finally:
        await server.runner.cleanup()
    for key in [(k, p) for k in ("ttfb", "processing") for p in ("stt", "brain", "tts")]:
        assert key in seen, f"no {key} metric; got {sorted(seen)}"
    assert all(value > 0 for values in seen.values() for value in values), seen
