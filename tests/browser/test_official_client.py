"""The official Pipecat JS client (client-js 1.13.1 + small-webrtc-transport 1.10.8, pinned in
``official_client/package-lock.json``) in real Chromium against our server, unchanged.

The bundle is built by esbuild from the installed npm packages into a temporary folder and
served under the live server's origin (Playwright routing), so the client's relative and
same-origin requests reach our signalling server exactly as in a deployed front end.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(120)

CLIENT_DIR = Path(__file__).parent / "official_client"
ESBUILD = CLIENT_DIR / "node_modules" / ".bin" / "esbuild"
PAGE_PATH = "/__official__/index.html"
BUNDLE_PATH = "/__official__/bundle.js"
HEARD = 0.02  # RMS on the WebAudio analyser; the fake microphone's bursts are at 0.5

LiveServer = Any  # conftest.LiveServer


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if not ESBUILD.exists():
        raise RuntimeError(f"{ESBUILD} is missing: run tests/browser/install.sh (npm ci)")
    out = tmp_path_factory.mktemp("official") / "bundle.js"
    subprocess.run(
        [
            str(ESBUILD),
            "src/main.js",
            "--bundle",
            "--format=iife",
            "--target=es2020",
            f"--outfile={out}",
            "--log-level=warning",
        ],
        cwd=CLIENT_DIR,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.read_bytes()


@pytest.fixture
def official(live_server: LiveServer, browser: Any, bundle: bytes) -> Iterator[Any]:
    """A page at the live server's origin that has loaded the official client bundle."""
    context = browser.new_context()
    page = context.new_page()
    html = '<!doctype html><meta charset="utf-8"><title>official client</title><script src="bundle.js"></script>'
    page.route(f"{live_server.url}{PAGE_PATH}", lambda route: route.fulfill(body=html, content_type="text/html"))
    page.route(
        f"{live_server.url}{BUNDLE_PATH}",
        lambda route: route.fulfill(body=bundle, content_type="application/javascript"),
    )
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}{PAGE_PATH}")
    page.wait_for_function("() => typeof window.officialConnect === 'function'", timeout=10000)
    try:
        yield page
    finally:
        page.evaluate("() => window.officialDisconnect()")
        context.close()
    assert not errors, errors


def connect(page: Any, live_server: LiveServer, shape: str, audio_codec: str | None = None) -> dict[str, Any]:
    args = {"shape": shape, "base": live_server.url, "audioCodec": audio_codec}
    return dict(page.evaluate("(args) => window.officialConnect(args)", args))


@pytest.mark.parametrize("shape", ["webrtcRequestParams", "webrtcUrl", "start"])
def test_official_client_connects_gets_bot_ready_and_hears_the_echo(
    official: Any, live_server: LiveServer, shape: str
) -> None:
    result = connect(official, live_server, shape)
    ready = result["botReady"]
    assert ready["version"].startswith("2."), ready
    assert ready["about"]["library"] == "pipeline-run"
    print(f"[official client] {shape}: connect() -> bot-ready in {result['connectMs']} ms")
    # The fake microphone's tone bursts come back on the bot's audio track.
    official.wait_for_function(f"() => window.__official.peak > {HEARD}", timeout=20000)
    states = official.evaluate("() => window.__official.states")
    assert "ready" in states, states


def test_official_client_request_gets_a_server_response(official: Any, live_server: LiveServer) -> None:
    connect(official, live_server, "webrtcRequestParams")
    answer = official.evaluate("() => window.officialRequest('greet', {n: 7})")
    assert answer == {"echo": {"n": 7}}
    assert live_server.wait_for(lambda s: any(t == "greet" and d == {"n": 7} for _, t, d in s.client_messages))


def test_official_client_mic_toggle_sends_track_status(official: Any, live_server: LiveServer) -> None:
    connect(official, live_server, "webrtcUrl")
    pc_id = official.evaluate("() => window.__official.answers.at(-1).pc_id")
    official.evaluate("() => window.officialMic(false)")
    assert live_server.wait_for(lambda s: (pc_id, 0, False) in s.track_status)
    # The WavMediaManager pauses its recorder asynchronously; unmuting before that has finished
    # makes the library throw "Already recording". Give it the moment a person's click would.
    official.wait_for_timeout(1000)
    official.evaluate("() => window.officialMic(true)")
    assert live_server.wait_for(lambda s: (pc_id, 0, True) in s.track_status)


def test_official_client_set_audio_codec_pcmu_takes_effect(official: Any, live_server: LiveServer) -> None:
    connect(official, live_server, "webrtcRequestParams", audio_codec="PCMU/8000")
    offer = official.evaluate("() => window.__official.offers.at(-1).sdp")
    answer = official.evaluate("() => window.__official.answers.at(-1).sdp")
    assert "PCMU/8000" in offer and "opus/48000" not in offer
    assert "PCMU/8000" in answer and "opus/48000" not in answer
    official.wait_for_function(f"() => window.__official.peak > {HEARD}", timeout=20000)
    codec = official.evaluate("() => window.officialAudioCodec()")
    assert codec == "audio/PCMU/8000", codec
