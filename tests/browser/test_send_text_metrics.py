"""The official JS client against ``pipelines/voice.yaml`` (metrics on): ``sendText()`` gets a spoken
reply (``onBotOutput`` / ``onBotTtsText`` and bot audio) and ``onMetrics`` receives TTFB and
processing times of the responder and the TTS. Real Chromium, our real server, loopback only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.browser.conftest import ROOT, LiveServer, _missing_browser_reason, serve_spec
from tests.browser.test_official_client import bundle, connect, official

pytest.importorskip("pipeline_run_tts_espeak")
pytest.importorskip("pipeline_run_stt_pocketsphinx")
pytest.importorskip("pipeline_run_vad_silero")
pytest.importorskip("pipeline_run_llm_rules")

pytestmark = pytest.mark.timeout(120)

__all__ = ["bundle", "official"]  # fixtures this module uses, defined beside the other official-client tests

VOICE_SPEC = ROOT / "pipelines" / "voice.yaml"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """pipelines/voice.yaml with ``pipeline.enable_metrics`` on."""
    if _missing_browser_reason():
        pytest.skip(_missing_browser_reason() or "")
    tmp = tmp_path_factory.mktemp("spec")
    data = yaml.safe_load(VOICE_SPEC.read_text())
    data["pipeline"]["enable_metrics"] = True
    source = Path(tmp / "voice-metrics.yaml")
    source.write_text(yaml.safe_dump(data, sort_keys=False))
    with serve_spec(source, tmp) as server:
        yield server


def test_send_text_gets_a_spoken_reply_and_metrics(official: Any, live_server: LiveServer) -> None:
    result = connect(official, live_server, "webrtcRequestParams")
    assert result["botReady"]["capabilities"]["metrics"] is True
    official.evaluate("() => window.officialSendText('what is your name', {run_immediately: true})")
    official.wait_for_function(
        "() => window.__official.botOutput.some((d) => (d.text || '').includes('My name is'))", timeout=30000
    )
    official.wait_for_function(
        "() => window.__official.botTtsText.some((d) => (d.text || '').includes('My name is'))", timeout=30000
    )
    official.wait_for_function("() => window.__official.peak > 0.01", timeout=30000)  # the reply was heard
    official.wait_for_function(
        """() => ['brain', 'tts'].every((p) => ['ttfb', 'processing'].every((k) =>
            window.__official.metrics.some((m) => (m[k] || []).some((e) => e.processor === p && e.value > 0))))""",
        timeout=30000,
    )
    metrics = official.evaluate("() => window.__official.metrics")
    assert all(set(m) <= {"ttfb", "processing"} for m in metrics), metrics


def test_page_sends_text_and_shows_metrics(live_server: LiveServer, page: Any) -> None:
    page.goto(f"{live_server.url}/?processing=0")
    page.click("#connect")
    page.wait_for_function("() => window.__stats.botReady === true", timeout=20000)
    page.select_option("#send-kind", "text")
    assert page.locator("#send-type-row").is_hidden()
    page.fill("#send-body", "what is your name")
    page.click("#send")
    page.wait_for_function(
        "() => document.getElementById('conversation').textContent.includes('My name is')", timeout=30000
    )
    page.wait_for_function(
        "() => ['ttfb:tts', 'processing:tts', 'ttfb:brain'].every((k) => window.__stats.metrics[k])", timeout=30000
    )
    rows = page.locator("#metrics tr").all_inner_texts()
    assert any(row.startswith("tts\tttfb\t") and " ms" in row for row in rows), rows
    assert all(m["value"] > 0 for m in page.evaluate("() => Object.values(window.__stats.metrics)"))
    page.click("#disconnect")
