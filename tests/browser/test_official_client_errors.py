"""The official JS client hears a bot's errors: RTVI ``error`` reaches its ``error`` event, a fatal
one ends the call, a non-fatal one does not. Real Chromium, our real server, loopback only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.browser.conftest import ECHO_SPEC, LiveServer, _missing_browser_reason, serve_spec
from tests.browser.test_official_client import bundle, connect, official
from tests.support.faults import registry_with_bomb

pytestmark = pytest.mark.timeout(120)

__all__ = ["bundle", "official"]  # fixtures this module uses, defined beside the other official-client tests


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """pipelines/echo.yaml plus the test processor that fails on request."""
    if _missing_browser_reason():
        pytest.skip(_missing_browser_reason() or "")
    tmp = tmp_path_factory.mktemp("spec")
    data = yaml.safe_load(ECHO_SPEC.read_text())
    data["processors"].append({"id": "bomb", "type": "test.bomb"})
    source = Path(tmp / "echo-bomb.yaml")
    source.write_text(yaml.safe_dump(data, sort_keys=False))
    with serve_spec(source, tmp, registry=registry_with_bomb()) as server:
        yield server


LISTEN = "() => { window.__errors = []; window.__official.client.on('error', (m) => window.__errors.push(m)); }"


def _errors(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate("() => window.__errors.map((m) => ({type: m.type, data: m.data}))"))


def test_a_non_fatal_error_is_reported_and_the_call_goes_on(official: Any, live_server: LiveServer) -> None:
    connect(official, live_server, "webrtcRequestParams")
    official.evaluate(LISTEN)
    official.evaluate("() => window.__official.client.sendClientMessage('bomb', 'dud')")
    official.wait_for_function("() => window.__errors.length === 1", timeout=15000)
    assert _errors(official) == [{"type": "error", "data": {"error": "dud went off", "fatal": False}}]
    # still in the call: a request round-trips after the error
    answer = official.evaluate("() => window.officialRequest('still-there', {n: 1})")
    assert answer == {"echo": {"n": 1}}
    assert official.evaluate("() => window.__official.states.at(-1)") == "ready"


def test_a_fatal_error_ends_the_call(official: Any, live_server: LiveServer) -> None:
    connect(official, live_server, "webrtcRequestParams")
    sessions = len(live_server.sessions)
    official.evaluate(LISTEN)
    official.evaluate("() => window.__official.client.sendClientMessage('bomb', 'task')")
    official.wait_for_function("() => window.__errors.length >= 1", timeout=15000)
    assert _errors(official)[0] == {"type": "error", "data": {"error": "RuntimeError: detonated", "fatal": True}}
    official.wait_for_function("() => window.__official.states.at(-1) === 'disconnected'", timeout=15000)
    assert len(live_server.sessions) == sessions  # no new session was started behind its back
