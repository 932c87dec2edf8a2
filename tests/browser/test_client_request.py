"""The official JS client's ``sendClientRequest()`` against pipelines/echo.yaml, answered by the spec itself.

Unlike the other browser tests, the server here does not answer requests on the spec's behalf:
every answer comes from echo.yaml's ``reply`` action.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import ECHO_SPEC, LiveServer, _missing_browser_reason, serve_spec
from tests.browser.test_official_client import bundle, connect, official

pytestmark = pytest.mark.timeout(120)

__all__ = ["bundle", "official"]  # fixtures this module uses, defined beside the other official-client tests

#: JSON of every kind; the client must get each back exactly.
PAYLOADS: list[Any] = [
    {"n": 7},
    {"nested": {"list": [1, "two", None, False]}, "empty": {}},
    "plain text with ünïcödé",
    42,
    [1, [2, [3]]],
    None,
]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """pipelines/echo.yaml on loopback, with nobody but the spec answering client requests."""
    if _missing_browser_reason():
        pytest.skip(_missing_browser_reason() or "")
    with serve_spec(ECHO_SPEC, tmp_path_factory.mktemp("spec"), answer_client_messages=False) as server:
        yield server


def test_send_client_request_resolves_with_the_data_it_sent(official: Any, live_server: LiveServer) -> None:
    connect(official, live_server, "webrtcRequestParams")
    for i, payload in enumerate(PAYLOADS):
        answer = official.evaluate(
            "([t, d]) => window.officialRequest(t, d).then((r) => ({ok: r}), (e) => ({failed: String(e)}))",
            [f"req-{i}", payload],
        )
        assert answer == {"ok": payload}, (i, payload, answer)
    # the server saw each request once, in order, with the data the browser sent
    assert live_server.wait_for(lambda s: len(s.client_messages) >= len(PAYLOADS))
    with live_server.lock:
        seen = [(t, d) for _, t, d in live_server.client_messages]
    assert seen == [(f"req-{i}", d) for i, d in enumerate(PAYLOADS)]
