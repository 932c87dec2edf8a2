"""The test page at ``/`` in real Chromium against the real echo bot."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(120)


LiveServer = Any  # conftest.LiveServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stats(page: Any) -> dict[str, Any]:
    return dict(page.evaluate("() => JSON.parse(JSON.stringify({...window.__stats, log: undefined}))"))


def wait_stats(page: Any, expr: str, timeout_ms: int = 20000) -> None:
    """Wait until ``expr`` (JS, with ``s`` = window.__stats) is true; on timeout, show the page's state."""
    try:
        page.wait_for_function(f"() => {{ const s = window.__stats; return {expr}; }}", timeout=timeout_ms)
    except Exception as exc:
        s = stats(page)
        log = page.evaluate("() => window.__stats.log.slice(-30).map(e => `${e.kind} ${e.text}`)")
        raise AssertionError(f"waiting for {expr!r}: {exc}\nstats={s}\nlog={json.dumps(log, indent=1)}") from None


def test_page_connects_echoes_and_round_trips(live_server: LiveServer, page: Any, artifacts: Path) -> None:
    # Voice processing off: the echo cancellers would treat the echoed tone as echo and cut it.
    page.goto(f"{live_server.url}/?processing=0")
    assert page.title() == "pipeline-run test page"
    page.click("#connect")
    wait_stats(page, "s.botReady === true")
    first = stats(page)
    assert first["connectToReadyMs"] is not None
    assert page.locator("#ready").is_visible()

    # Bot audio came back: the tone bursts the fake microphone plays are heard on the remote track.
    wait_stats(page, "s.remoteAudioPeak > 0.05 && s.echoLatencyMs !== null && s.remoteOnsets.length >= 3")
    wait_stats(page, "s.rtc['audio-inbound-rtp'] && s.rtc['audio-inbound-rtp'].kbps > 0", 5000)
    s = stats(page)
    assert s["remoteAudioPeak"] > 0.05
    assert 0 < s["echoLatencyMs"] < 1500

    # A client-message request gets its server-response (the box in the page, then the API).
    page.fill("#send-type", "greet")
    page.fill("#send-body", '{"n": 1}')
    page.click("#send")
    assert live_server.wait_for(lambda srv: any(m[1] == "greet" and m[2] == {"n": 1} for m in srv.client_messages))
    wait_stats(page, "s.responses.some(r => r.type === 'server-response' && r.data.t === 'greet')", 5000)
    answer = page.evaluate("() => window.__app.request('second', {n: 2})")
    assert answer == {"echo": {"n": 2}}

    # Mute and unmute send trackStatus, and the server's connection sees both.
    pc_id = s["pcId"]
    page.click("#mic-toggle")
    assert live_server.wait_for(lambda srv: (pc_id, 0, False) in srv.track_status), live_server.track_status
    assert page.locator("#mic-toggle").inner_text() == "Mic off"
    page.click("#mic-toggle")
    assert live_server.wait_for(
        lambda srv: srv.track_status.count((pc_id, 0, True)) >= 2  # one on channel open, one on unmute
    ), live_server.track_status
    sent = stats(page)["trackStatusSent"]
    assert {"receiver_index": 0, "enabled": False} in sent

    # The log shows both directions, and the conversation the RTVI handshake.
    log_text = page.inner_text("#log")
    assert "client-ready" in log_text and "bot-ready" in log_text and "trackStatus" in log_text
    assert "bot ready" in page.inner_text("#conversation")
    page.wait_for_timeout(1200)  # one more stats tick so the table is full
    page.screenshot(path=str(artifacts / "test-page.png"), full_page=True)

    result = {
        "connect_to_bot_ready_ms": first["connectToReadyMs"],
        "echo_latency_ms": s["echoLatencyMs"],
        "rtc": stats(page)["rtc"],
    }
    (artifacts / "test-page-measurements.json").write_text(json.dumps(result, indent=2))
    print(
        f"\nconnect→bot-ready {result['connect_to_bot_ready_ms']} ms, echo (tone onset) {result['echo_latency_ms']} ms"
    )

    page.click("#disconnect")
    wait_stats(page, "s.state === 'disconnected'", 5000)
    assert page.locator("#connect").is_enabled()


def test_page_phone_sized_and_start_flow(live_server: LiveServer, browser: Any, artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/?mode=start&processing=0")
        page.click("#connect")
        wait_stats(page, "s.botReady === true")
        assert stats(page)["sessionId"]
        wait_stats(page, "s.remoteAudioPeak > 0.05", 15000)
        # No sideways scrolling on a phone.
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.screenshot(path=str(artifacts / "test-page-phone.png"), full_page=True)
        page.click("#disconnect")
        wait_stats(page, "s.state === 'disconnected'", 5000)
    finally:
        context.close()


def test_page_server_down_is_a_clear_error(live_server: LiveServer, page: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}/"
    page.goto(f"{live_server.url}/?mode=direct&server={dead}")
    page.click("#connect")
    wait_stats(page, "s.state === 'error'", 15000)
    error = page.inner_text("#error")
    assert "cannot reach the server" in error
    assert page.locator("#connect").is_enabled()


class _Refuse(BaseHTTPRequestHandler):
    def _send(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "POST, PATCH, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._send(204)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(403, b'{"detail": "not allowed here"}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_page_refusal_is_a_clear_error(live_server: LiveServer, page: Any, refusing_server: str) -> None:
    page.goto(f"{live_server.url}/?mode=direct&server={refusing_server}")
    page.click("#connect")
    wait_stats(page, "s.state === 'error'", 15000)
    error = page.inner_text("#error")
    assert "refused" in error and "403" in error and "not allowed here" in error


def test_page_microphone_denied_is_a_clear_error(live_server: LiveServer, page: Any) -> None:
    page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('denied', 'NotAllowedError'));"
    )
    page.goto(live_server.url + "/")
    page.click("#connect")
    wait_stats(page, "s.state === 'error'", 5000)
    assert "Microphone access was denied" in page.inner_text("#error")


def test_page_bad_json_in_message_box(live_server: LiveServer, page: Any) -> None:
    page.goto(f"{live_server.url}/?processing=0")
    page.click("#connect")
    wait_stats(page, "s.botReady === true")
    page.fill("#send-body", "{not json")
    page.click("#send")
    assert "not valid JSON" in page.inner_text("#error")
    page.click("#disconnect")


def test_page_restart_pc_keeps_the_session(live_server: LiveServer, page: Any) -> None:
    """What the page does on ICE failure: a new peer connection, offered with the old pc_id and restart_pc."""
    page.goto(f"{live_server.url}/?processing=0")
    page.click("#connect")
    wait_stats(page, "s.botReady === true && s.remoteAudioPeak > 0.05")
    old = stats(page)["pcId"]
    sessions = len(live_server.sessions)
    page.evaluate("() => window.__app.forceIceRestart()")
    wait_stats(page, f"s.pcId !== {old!r} && s.reconnects === 1 && s.state === 'ready'", 15000)
    page.evaluate("() => { window.__stats.remoteAudioPeak = 0; }")
    wait_stats(page, "s.remoteAudioPeak > 0.05", 15000)  # the echo resumes on the new peer connection
    assert "restart_pc=true" in page.inner_text("#log")
    assert len(live_server.sessions) == sessions  # same bot, no new session
    page.click("#disconnect")
