"""Real-browser tests: Debian's Chromium driven by Playwright against the real server, loopback only.

Nothing here reaches the network: the server gathers only 127.0.0.1, Chromium gets no STUN server,
fake media come from a WAV file made by the test, and the official client is bundled from the
npm packages pinned in ``official_client/package-lock.json`` (``tests/browser/install.sh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import socket
import struct
import threading
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
ECHO_SPEC = ROOT / "pipelines" / "echo.yaml"

#: The tone burst the fake microphone plays, once per period (the file loops).
TONE_HZ = 440.0
TONE_MS = 200
PERIOD_MS = 1000

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


def _missing_browser_reason() -> str | None:
    """Why the browser tests cannot run here, or None. With PIPELINE_RUN_REQUIRE_BROWSER=1
    (``./dev test`` sets it after installing them) a missing browser is an error, not a skip."""
    reason = _missing_browser()
    if reason and os.environ.get("PIPELINE_RUN_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"browser tests required but cannot run: {reason}")
    return reason


def _missing_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (run tests/browser/install.sh, or apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is missing (run tests/browser/install.sh VENV_PYTHON)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing_browser_reason()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


def write_tone_wav(path: Path, *, rate: int = 48000, seconds: float = 4.0) -> Path:
    """A mono 16-bit WAV: a TONE_MS burst of TONE_HZ at the start of every PERIOD_MS, silence between."""
    frames = bytearray()
    period = rate * PERIOD_MS // 1000
    burst = rate * TONE_MS // 1000
    ramp = rate // 200  # 5 ms fade in/out: a clean onset without clicks
    for i in range(int(rate * seconds)):
        pos = i % period
        sample = 0.0
        if pos < burst:
            gain = min(1.0, pos / ramp, (burst - pos) / ramp)
            sample = 0.5 * gain * math.sin(2 * math.pi * TONE_HZ * i / rate)
        frames += struct.pack("<h", int(sample * 32767))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return path


@pytest.fixture(scope="session")
def tone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tone_wav(tmp_path_factory.mktemp("media") / "tone.wav")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class LiveServer:
    """The real signalling server + echo bot, in a thread with its own event loop."""

    url: str
    port: int
    track_status: list[tuple[str, int, bool]] = dataclasses.field(default_factory=list)
    client_messages: list[tuple[str, str, Any]] = dataclasses.field(default_factory=list)
    sessions: list[str] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self):
                    return True
            time.sleep(0.05)
        return False


def _test_spec(source: Path, tmp: Path, port: int) -> Path:
    """``source`` with loopback-only ICE and a free port."""
    data = yaml.safe_load(source.read_text())
    data.setdefault("server", {}).update({"host": "127.0.0.1", "port": port})
    data.setdefault("ice", {}).update({"servers": [], "host_addresses": ["127.0.0.1"]})
    path = tmp / f"{source.stem}-loopback.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@contextlib.contextmanager
def serve_spec(
    source: Path, tmp: Path, *, answer_client_messages: bool = True, registry: Any = None
) -> Iterator[LiveServer]:
    """The real signalling server running ``source``'s bot, in a thread with its own loop.

    The bot is wrapped to record trackStatus and client-message requests (answered with
    ``{"echo": data}`` unless ``answer_client_messages`` is False, leaving them to the spec)
    so the tests can see what the browser sent. ``registry`` (default: the installed plugins)
    may add test-only processors.
    """
    from runner import build
    from runner.plugins import PluginRegistry
    from runner.server import serve
    from runner.spec import load_spec

    port = free_port()
    spec = load_spec(_test_spec(source, tmp, port), registry or PluginRegistry.discover())
    config = build.server_config(spec, port=port)
    config = dataclasses.replace(config, host_addresses=["127.0.0.1"], static_dir=build.STATIC_DIR)
    base_bot = build.make_bot(spec)
    server = LiveServer(url=f"http://127.0.0.1:{port}", port=port)

    async def bot(connection: Any, session: Any) -> None:
        with server.lock:
            server.sessions.append(session.session_id)

        @connection.event_handler("track-status")
        async def _track_status(conn: Any, index: int, enabled: bool) -> None:
            with server.lock:
                server.track_status.append((conn.pc_id, index, enabled))

        @connection.event_handler("client-message")
        async def _client_message(conn: Any, msg_type: str, payload: Any, request_id: str | None) -> None:
            with server.lock:
                server.client_messages.append((conn.pc_id, msg_type, payload))
            if answer_client_messages and request_id is not None:
                conn.send_server_response(request_id, msg_type, {"echo": payload})

        await base_bot(connection, session)

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve(config, bot, stop=stop))
        except BaseException as exc:  # reported by _wait_listening
            failure.append(exc)

    thread = threading.Thread(target=run, name="pipeline-run-server", daemon=True)
    thread.start()
    _wait_listening(port, failure)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=15)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """pipelines/echo.yaml served on loopback."""
    if _missing_browser_reason():
        pytest.skip(_missing_browser_reason() or "")
    with serve_spec(ECHO_SPEC, tmp_path_factory.mktemp("spec")) as server:
        yield server


def _wait_listening(port: int, failure: list[BaseException], timeout: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if failure:
            raise RuntimeError(f"server failed to start: {failure[0]!r}") from failure[0]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} within {timeout} s")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright's sync driver, per test module.

    Module scope matters: while the sync API is active it runs an event loop in the main
    thread, which would break every asyncio test collected after the browser tests.
    """
    reason = _missing_browser_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@contextlib.contextmanager
def launch_chromium(driver: Any, fake_audio: Path) -> Iterator[Any]:
    """Headless Debian Chromium whose fake microphone plays ``fake_audio`` (looped)."""
    browser = driver.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        chromium_sandbox=False,
        args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={fake_audio}"],
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def browser(playwright: Any, tone_wav: Path) -> Iterator[Any]:
    with launch_chromium(playwright, tone_wav) as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.console_lines = console  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()
