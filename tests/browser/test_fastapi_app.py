"""The official JS client in Chromium against our signalling mounted in a FastAPI app (uvicorn).

The page and the bundle are served at the FastAPI app's origin (Playwright routing, as in
test_official_client.py), so the client's requests go to the user's app, which answers its own
route and hands ``/api/offer`` and ``/start`` to the mounted signalling.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import ECHO_SPEC
from tests.browser.test_official_client import BUNDLE_PATH, HEARD, PAGE_PATH, bundle
from tests.support.asgi_server import load_example, serve_uvicorn

pytestmark = pytest.mark.timeout(120)

__all__ = ["bundle"]  # the module fixture, shared with test_official_client.py


@pytest.fixture(scope="module")
def fastapi_url() -> Iterator[str]:
    """examples/fastapi_app.py serving pipelines/echo.yaml's bot on loopback, in its own loop."""
    example = load_example("fastapi_app")
    handler = example.handler_from_spec(str(ECHO_SPEC), host_addresses=["127.0.0.1"])
    loop = asyncio.new_event_loop()
    url: list[str] = []
    ready, stop = threading.Event(), asyncio.Event()
    failure: list[BaseException] = []

    async def run() -> None:
        async with serve_uvicorn(example.build_app(handler)) as base:
            url.append(base)
            ready.set()
            await stop.wait()

    def main() -> None:
        try:
            loop.run_until_complete(run())
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=main, name="fastapi-app", daemon=True)
    thread.start()
    assert ready.wait(30) and not failure, failure
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
    assert not failure, failure
    assert handler.registry.counts()["sessions"] == 0  # the lifespan ended every session


@pytest.fixture
def page_at_app(fastapi_url: str, browser: Any, bundle: bytes) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    html = '<!doctype html><meta charset="utf-8"><title>fastapi app</title><script src="bundle.js"></script>'
    page.route(f"{fastapi_url}{PAGE_PATH}", lambda route: route.fulfill(body=html, content_type="text/html"))
    page.route(
        f"{fastapi_url}{BUNDLE_PATH}", lambda route: route.fulfill(body=bundle, content_type="application/javascript")
    )
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{fastapi_url}{PAGE_PATH}")
    page.wait_for_function("() => typeof window.officialConnect === 'function'", timeout=10000)
    try:
        yield page
    finally:
        page.evaluate("() => window.officialDisconnect()")
        context.close()
    assert not errors, errors


@pytest.mark.parametrize("shape", ["webrtcRequestParams", "start"])
def test_official_client_in_a_fastapi_app_gets_bot_ready_and_the_echo(
    page_at_app: Any, fastapi_url: str, shape: str
) -> None:
    hello = page_at_app.evaluate("async () => (await fetch('/hello')).json()")
    assert hello["hello"] == "from your app"
    result = page_at_app.evaluate("(args) => window.officialConnect(args)", {"shape": shape, "base": fastapi_url})
    ready = result["botReady"]
    assert ready["version"].startswith("2."), ready
    assert ready["about"]["library"] == "pipeline-run"
    page_at_app.wait_for_function(f"() => window.__official.peak > {HEARD}", timeout=20000)
    assert "ready" in page_at_app.evaluate("() => window.__official.states")
    answer = page_at_app.evaluate("() => window.officialRequest('greet', {n: 3})")
    assert answer == {"n": 3}  # echo.yaml replies with the request's own data
    hello = page_at_app.evaluate("async () => (await fetch('/hello')).json()")
    assert hello["sessions"]["connected"] >= 1  # the previous test's session may still be closing
