"""The shipped voice and video bots, used from the test page in real Chromium.

voice.yaml: the fake microphone says "good morning" (eSpeak) and the page's conversation shows
the user's transcript and the bot's spoken answer. video-transform.yaml: with the fake camera on,
the page shows the bot's transformed video at the configured size.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.browser.conftest import ROOT, LiveServer, launch_chromium, serve_spec

pytestmark = pytest.mark.timeout(120)

PHRASE = "good morning"


def speech_wav(path: Path, text: str, *, rate: int = 48000) -> Path:
    """``text`` spoken by eSpeak after 1.5 s of silence, then 5 s of silence (Chromium loops the file)."""
    from pipeline_run_tts_espeak._espeak import EspeakEngine, Voice

    pcm = np.frombuffer(EspeakEngine.shared().synthesize(text, Voice(name="en-us")), dtype=np.int16)
    speech = np.interp(np.arange(int(len(pcm) * rate / 22050)) * 22050 / rate, np.arange(len(pcm)), pcm)
    audio = np.concatenate([np.zeros(int(1.5 * rate)), speech, np.zeros(5 * rate)]).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(audio.tobytes())
    return path


@pytest.fixture(scope="module")
def voice_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serve_spec(ROOT / "pipelines" / "voice.yaml", tmp_path_factory.mktemp("voice")) as server:
        yield server


@pytest.fixture(scope="module")
def video_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serve_spec(ROOT / "pipelines" / "video-transform.yaml", tmp_path_factory.mktemp("video")) as server:
        yield server


@pytest.fixture(scope="module")
def speaking_browser(tmp_path_factory: pytest.TempPathFactory, playwright: Any) -> Iterator[Any]:
    """A Chromium whose microphone says PHRASE."""
    wav = speech_wav(tmp_path_factory.mktemp("speech") / "speech.wav", PHRASE)
    with launch_chromium(playwright, wav) as chromium:
        yield chromium


def conversation(page: Any, who: str) -> list[str]:
    return list(page.eval_on_selector_all(f"#conversation .say-{who} span", "els => els.map(e => e.textContent)"))


def test_voice_bot_answers_a_spoken_phrase_in_the_page(
    voice_server: LiveServer, speaking_browser: Any, artifacts: Path
) -> None:
    context = speaking_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{voice_server.url}/?processing=0")
        page.click("#connect")
        page.wait_for_function("() => window.__stats.botReady === true", timeout=20000)
        # The greeting (on_client_ready) and then the answer to the phrase, as text and audio.
        page.wait_for_function(
            f"() => [...document.querySelectorAll('#conversation .say-user span')]"
            f".some(e => e.textContent.toLowerCase().includes('{PHRASE}'))",
            timeout=30000,
        )
        page.wait_for_function("() => document.querySelectorAll('#conversation .say-bot').length >= 2", timeout=20000)
        page.wait_for_function("() => window.__stats.remoteAudioPeak > 0.02", timeout=10000)
        page.screenshot(path=str(artifacts / "voice-page.png"), full_page=True)
        users, bots = conversation(page, "user"), conversation(page, "bot")
        assert any(PHRASE in text.lower() for text in users), users
        assert any("morning" in text.lower() for text in bots[1:]), bots
        # Each spoken sentence is shown once (bot-output), not again for bot-tts-text.
        assert "Good morning! Good morning!" not in " ".join(bots), bots
    finally:
        context.close()


def test_video_bot_shows_the_transformed_camera_in_the_page(
    video_server: LiveServer, browser: Any, artifacts: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{video_server.url}/?processing=0")
        page.click("#cam-toggle")  # camera on: acquired when connecting
        page.click("#connect")
        page.wait_for_function("() => window.__stats.botReady === true", timeout=20000)
        page.wait_for_function("() => document.getElementById('self-video').videoWidth > 0", timeout=10000)
        page.wait_for_function(
            "() => { const v = document.getElementById('bot-video');"
            " return v.videoWidth === 640 && v.videoHeight === 480"
            " && v.getVideoPlaybackQuality().totalVideoFrames > 30; }",
            timeout=30000,
        )
        page.screenshot(path=str(artifacts / "video-page.png"), full_page=True)
        # The bot's picture is the camera transformed (mirrored, edges drawn, text and inset added):
        # it differs clearly from the camera's own picture at the same moment.
        difference = page.evaluate(
            """() => {
                const grab = (id) => {
                    const c = document.createElement('canvas'); c.width = 160; c.height = 120;
                    const g = c.getContext('2d'); g.drawImage(document.getElementById(id), 0, 0, 160, 120);
                    return g.getImageData(0, 0, 160, 120).data;
                };
                const a = grab('bot-video'), b = grab('self-video');
                let sum = 0;
                for (let i = 0; i < a.length; i += 4) sum += Math.abs(a[i + 1] - b[i + 1]);
                return sum / (a.length / 4);
            }"""
        )
        assert difference > 8, difference
    finally:
        context.close()
