"""``pipelines/voice.yaml`` end to end: a WebRTC client on loopback talks to the real server.

The client sends eSpeak speech as its microphone and listens: greeting after client-ready,
a spoken turn (transcript, reply text, reply audio), and barge-in over the greeting. All ICE
stays on 127.0.0.1 with empty ICE server lists. Times are printed, never asserted tightly.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runner.build import make_bot
from tests.e2e.speech import VoicePeer, load_voice_spec
from tests.support.server import RunningServer, start_test_server

pytest.importorskip("pipeline_run_tts_espeak")
pytest.importorskip("pipeline_run_stt_pocketsphinx")
pytest.importorskip("pipeline_run_vad_silero")
pytest.importorskip("pipeline_run_llm_rules")

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    """The real signalling server running the voice spec's bot on 127.0.0.1."""
    spec = load_voice_spec()
    assert spec.ice.host_addresses == ["127.0.0.1"] and spec.ice.servers == []
    running = await start_test_server(make_bot(spec), host_addresses=["127.0.0.1"], ice_servers=[])
    try:
        yield running
    finally:
        await running.runner.cleanup()


@pytest.fixture
async def peer(server: RunningServer) -> AsyncIterator[VoicePeer]:
    """A connected client with an open data channel."""
    async with VoicePeer(server.url) as client:
        await client.connect()
        await client.wait_open()
        yield client


async def test_greeting_arrives_after_client_ready(peer: VoicePeer) -> None:
    await asyncio.sleep(1.0)
    assert peer.first_speech_after(0.0) is None, "the bot spoke before the client was ready"
    ready_at = time.monotonic()
    peer.send_client_ready()
    await peer.wait_rtvi("bot-ready")
    output = await peer.wait_for(lambda m: _is(m, "bot-output") and "offline voice bot" in _text(m), within=20)
    assert output["data"]["spoken"] is True
    await peer.wait_heard_until(time.monotonic() + 0.5)
    first_audio = peer.first_speech_after(ready_at)
    assert first_audio is not None, "no greeting audio reached the client"
    print(f"\ngreeting: first audio {1000 * (first_audio - ready_at):.0f} ms after client-ready was sent")


@pytest.mark.parametrize(
    ("phrase", "reply"),
    [("good morning", "Good morning! I hope you slept well."), ("tell me a joke", "Why did the robot go on holiday?")],
)
async def test_spoken_turn_gets_transcript_reply_text_and_audio(peer: VoicePeer, phrase: str, reply: str) -> None:
    # no client-ready: no greeting, so the turn has the floor at once
    await asyncio.sleep(0.5)
    clip = await peer.say(phrase)
    transcript = await peer.wait_for(lambda m: _is(m, "user-transcription") and _final(m), within=20)
    assert transcript["data"]["text"] == phrase
    await peer.wait_for(lambda m: _is(m, "bot-llm-text") and reply.split()[0] in _text(m), within=20)
    await peer.wait_for(lambda m: _is(m, "bot-output") and reply.split("!")[0].split("?")[0] in _text(m), within=20)
    assert any(reply.startswith(t.strip()) or t.strip() in reply for t in peer.rtvi_texts("bot-tts-text"))
    await peer.wait_heard_until(clip.speech_end + 2.0, within=20)
    first_reply = peer.first_speech_after(clip.speech_end)
    assert first_reply is not None, "no reply audio after the user's speech ended"
    assert peer.loud_frames_between(clip.speech_end, clip.speech_end + 2.0) >= 10
    assert "user-started-speaking" in _types(peer) and "user-stopped-speaking" in _types(peer)
    print(f"\n{phrase!r}: voice-to-voice {1000 * (first_reply - clip.speech_end):.0f} ms at the client")


async def test_barge_in_silences_the_bot_and_the_new_turn_is_answered(peer: VoicePeer) -> None:
    ready_at = time.monotonic()
    peer.send_client_ready()
    await peer.wait_heard_until(ready_at + 0.2, within=20)
    deadline = time.monotonic() + 20
    while peer.first_speech_after(ready_at) is None:
        assert time.monotonic() < deadline, "greeting never started"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # the greeting is several seconds long: interrupt it mid-sentence
    # "hello world", not "hello": see test_first_utterance_hello (a fresh decoder hears "turn on")
    clip = await peer.say("hello world", lead_secs=0.0)
    done = clip.done
    assert done is not None
    await asyncio.wait_for(done.wait(), 10)
    await peer.wait_heard_until(clip.onset + 2.5, within=20)

    speaking_before = peer.loud_frames_between(clip.onset - 0.3, clip.onset)
    stopped_at = peer.silence_after(clip.onset, hold_secs=0.3)
    assert speaking_before > 0, "the bot was not speaking when the user started"
    assert stopped_at is not None, f"the bot never went silent after the user barged in: {_timeline(peer, clip.onset)}"
    stop_ms = 1000 * (stopped_at - clip.onset)
    print(f"\nbarge-in: bot audio silent {stop_ms:.0f} ms after the client's speech onset (target < 100 ms)")
    interrupted = peer.rtvi_times("bot-interrupted", after=ready_at)
    if interrupted:
        print(f"barge-in: bot-interrupted message {1000 * (interrupted[0] - clip.onset):.0f} ms after onset")
    assert stopped_at - clip.onset < 2.0
    assert interrupted, "no bot-interrupted message"

    # the interrupting words are a turn of their own and get their answer
    transcript = await peer.wait_for(lambda m: _is(m, "user-transcription") and _final(m), within=20)
    assert transcript["data"]["text"] == "hello world"
    await peer.wait_for(lambda m: _is(m, "bot-llm-text") and "Hello to you too" in _text(m), within=20)
    await peer.wait_heard_until(clip.speech_end + 2.5, within=20)
    assert peer.first_speech_after(stopped_at) is not None, "no reply audio after the barge-in"


async def test_first_utterance_hello(peer: VoicePeer) -> None:
    """A lone "hello" as a session's first utterance (once heard as "turn on": cold live CMN)."""
    await asyncio.sleep(0.5)
    await peer.say("hello")
    transcript = await peer.wait_for(lambda m: _is(m, "user-transcription") and _final(m), within=20)
    assert transcript["data"]["text"] == "hello"
    await peer.wait_for(lambda m: _is(m, "bot-llm-text") and _text(m).startswith(("Hello!", "Hi again")), within=20)


@pytest.mark.timeout(150)
def test_voice_latency_benchmark_runs() -> None:
    """The benchmark runs end to end and prints its table (its figures are not checked)."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, str(root / "bench" / "voice_latency.py"), "--turns", "2", "--barge-ins", "1"],
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    print(proc.stdout)
    assert "VAD stop" in proc.stdout and "transport" in proc.stdout and "total" in proc.stdout


def _is(message: object, msg_type: str) -> bool:
    return isinstance(message, dict) and message.get("label") == "rtvi-ai" and message.get("type") == msg_type


def _text(message: dict[str, object]) -> str:
    data = message.get("data")
    return str(data.get("text", "")) if isinstance(data, dict) else ""


def _final(message: dict[str, object]) -> bool:
    data = message.get("data")
    return isinstance(data, dict) and bool(data.get("final"))


def _timeline(peer: VoicePeer, t0: float) -> str:
    """Received levels and RTVI messages around ``t0`` (ms relative to it), for failure messages."""
    levels = [f"{1000 * (at - t0):.0f}:{rms:.0f}" for at, rms in peer.heard if -300 < 1000 * (at - t0) < 2500]
    events = [
        f"{1000 * (at - t0):.0f}:{m.get('type')}"
        for at, m in peer.timed_messages
        if isinstance(m, dict) and at > t0 - 1
    ]
    return f"levels {' '.join(levels)}; messages {' '.join(events)}"


def _types(peer: VoicePeer) -> list[str]:
    return [str(m.get("type")) for m in peer.messages if isinstance(m, dict)]
