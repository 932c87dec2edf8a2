"""Blackout scenarios: a real server and a real client lose all UDP for a while, in their own netns.

Run by tests/e2e/test_blackout.py and tests/browser/test_blackout.py as a subprocess under
``unshare -n`` (see :func:`run_in_namespace`): a network namespace belongs to a process, and the
``nft`` drop rule must never touch the host's namespace, whose loopback other tests share. The
scenario brings ``lo`` up, serves ``pipelines/echo.yaml`` (plus ``on_client_suspended`` /
``on_client_resumed`` log actions) on 127.0.0.1, connects a client, checks it hears its echo and
gets a per-session answer, drops every UDP packet for ``--blackout`` seconds, then reports as one
JSON line on stdout what the client and the server observed afterwards.

The bot answers the ``client-message`` ``count`` with ``{"session_id", "count"}``: the count of
that message in this bot's life, so a session that silently became a new bot shows a new id and
a count back at 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ECHO_SPEC = ROOT / "pipelines" / "echo.yaml"
NFT_TABLE = "pipeline_run_blackout"
#: What the scenario spec's ``on_client_resumed`` sends the client.
RESUMED_MESSAGE = {"type": "bot-event", "event": "resumed"}


# -- network ---------------------------------------------------------------------------------------


def nft_binary() -> str | None:
    """Path of ``nft`` (Debian puts it in /usr/sbin, which may not be on PATH)."""
    return shutil.which("nft") or ("/usr/sbin/nft" if os.access("/usr/sbin/nft", os.X_OK) else None)


def namespace_problem() -> str | None:
    """Why the scenarios cannot run here, or None."""
    if nft_binary() is None:
        return "nft is missing (tests/support/install_nftables.sh installs Debian's nftables)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is missing"
    return None


def run_in_namespace(args: list[str], timeout: float) -> dict[str, Any]:
    """Run this module with ``args`` in a fresh network namespace; return its JSON report."""
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "tests.support.blackout", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    reports = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not reports:
        tail = "\n".join(proc.stderr.splitlines()[-60:])
        raise AssertionError(f"scenario failed (rc={proc.returncode}); stdout={proc.stdout[-2000:]!r}\n{tail}")
    report: dict[str, Any] = json.loads(reports[-1])
    return report


def _nft(*args: str) -> None:
    nft = nft_binary()
    assert nft is not None
    subprocess.run([nft, *args], check=True, capture_output=True, text=True)


def _in_own_namespace() -> bool:
    """True when this process's netns is not the init process's (never firewall the host's)."""
    try:
        return os.readlink("/proc/self/ns/net") != os.readlink("/proc/1/ns/net")
    except OSError:  # cannot read pid 1's: we are in a user namespace, which unshare made
        return True


def bring_up_loopback() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)


def drop_udp() -> None:
    """Drop every UDP packet on this namespace's loopback (HTTP over TCP keeps working)."""
    assert _in_own_namespace(), "refusing to add firewall rules outside the test's own network namespace"
    _nft("add", "table", "inet", NFT_TABLE)
    for hook in ("input", "output"):
        _nft("add", "chain", "inet", NFT_TABLE, hook, f"{{ type filter hook {hook} priority 0; policy accept; }}")
        _nft("add", "rule", "inet", NFT_TABLE, hook, "meta", "l4proto", "udp", "drop")


def restore_udp() -> None:
    assert _in_own_namespace()
    _nft("delete", "table", "inet", NFT_TABLE)


# -- server ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class ServerSide:
    """What the server saw, recorded from its own threads."""

    url: str
    registry: Any = None
    sessions: list[str] = dataclasses.field(default_factory=list)
    events: list[tuple[float, str, str, Any]] = dataclasses.field(default_factory=list)  # (t, session, name, arg)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def record(self, session: str, name: str, arg: Any = None) -> None:
        with self.lock:
            self.events.append((time.monotonic(), session, name, arg))

    def names(self, session: str) -> list[str]:
        with self.lock:
            return [name for _, s, name, _ in self.events if s == session]

    def wait_keepalive(self, session_id: str, within: float = 10.0) -> None:
        """Until the server has seen the client's keepalive pings (so missing ones can suspend it)."""
        deadline = time.monotonic() + within
        while True:
            session = next((s for s in self.registry.sessions() if s.session_id == session_id), None)
            if session is not None and session.connection is not None and session.connection.keepalive_seen:
                return
            assert time.monotonic() < deadline, "the client sent no keepalive ping"
            time.sleep(0.05)

    def counts(self) -> dict[str, int]:
        """The server's ``/status`` numbers, over HTTP like any client."""
        import urllib.request

        with urllib.request.urlopen(self.url + "/status", timeout=5) as resp:
            status: dict[str, Any] = json.loads(resp.read())
        return {k: v for k, v in status.items() if isinstance(v, int)}


def _spec_file(tmp: Path, port: int, resume_window_secs: float) -> Path:
    data = yaml.safe_load(ECHO_SPEC.read_text())
    data.setdefault("server", {}).update({"host": "127.0.0.1", "port": port, "resume_window_secs": resume_window_secs})
    data.setdefault("ice", {}).update({"servers": [], "host_addresses": ["127.0.0.1"]})
    events = data.setdefault("events", {})
    events["on_client_suspended"] = [{"action": "log"}]
    # the spec's own reaction to the new transport event, seen by the client
    events["on_client_resumed"] = [{"action": "log"}, {"action": "send_app_message", "message": RESUMED_MESSAGE}]
    path = tmp / "echo-blackout.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@contextlib.contextmanager
def serve_echo(tmp: Path, resume_window_secs: float) -> Iterator[ServerSide]:
    """``pipelines/echo.yaml`` on 127.0.0.1, its own loop in a thread, its sessions recorded."""
    import socket

    from aiohttp import web

    from runner import build
    from runner.plugins import PluginRegistry
    from runner.server.app import REGISTRY_KEY, create_app
    from runner.spec import load_spec

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    spec = load_spec(_spec_file(tmp, port, resume_window_secs), PluginRegistry.discover())
    config = build.server_config(spec, port=port)
    config = dataclasses.replace(config, host_addresses=["127.0.0.1"], static_dir=None)
    base_bot = build.make_bot(spec)
    side = ServerSide(url=f"http://127.0.0.1:{port}")

    async def bot(connection: Any, info: Any) -> None:
        sid = info.session_id
        side.sessions.append(sid)
        asked = 0
        for name in ("suspended", "resumed", "disconnected", "closed", "pc-replaced"):
            connection.add_event_handler(name, lambda _c, *a, _n=name: side.record(sid, _n, a[0] if a else None))

        @connection.event_handler("client-message")
        async def _count(conn: Any, msg_type: str, payload: Any, request_id: str | None) -> None:
            nonlocal asked
            if msg_type == "count" and request_id is not None:
                asked += 1
                conn.send_server_response(request_id, msg_type, {"session_id": sid, "count": asked})

        try:
            await base_bot(connection, info)
        finally:
            side.record(sid, "bot_finished")

    app = create_app(config, bot)
    side.registry = app[REGISTRY_KEY]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def run() -> None:
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=lambda: loop.run_until_complete(run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not _listening(port):
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield side
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=20)


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


# -- python client ---------------------------------------------------------------------------------


async def _python_scenario(side: ServerSide, blackout: float, flow: str) -> dict[str, Any]:
    from runner.client import ClientError, SmallWebRTCClient
    from runner.client.media import AudioMeter, ToneSource

    meter = AudioMeter()
    client = SmallWebRTCClient(host_addresses=["127.0.0.1"], audio_track=ToneSource(440.0))
    client.add_audio_sink(meter.feed)
    client_events: list[str] = []
    app_messages: list[Any] = []
    client.add_event_handler("app-message", lambda _c, message: app_messages.append(message))
    for name in ("reconnecting", "reconnected", "disconnected", "error"):
        client.add_event_handler(name, lambda _c, *a, _n=name: client_events.append(_n))
    report: dict[str, Any] = {"client": "python", "blackout_secs": blackout, "flow": flow}
    if flow == "start":
        await client.start_bot_and_connect(side.url + "/start", {"transport": "webrtc"})
    else:
        await client.connect(side.url + "/api/offer")
    await _until(lambda: meter.seconds > 1.0 and meter.level_dbfs() > -30, 15)
    report["before"] = await client.send_client_message("count", None)
    report["pc_id_before"] = client.pc_id
    await asyncio.to_thread(side.wait_keepalive, report["before"]["session_id"])
    drop_udp()
    await asyncio.sleep(blackout)
    restore_udp()
    report["client_state_at_restore"] = client.state
    if blackout < 30:
        heard = meter.seconds
        await _until(lambda: meter.seconds > heard + 1.0 and meter.level_dbfs() > -30, 30)
        report["echo_after"] = True
        try:
            report["after"] = await client.send_client_message("count", None, timeout_secs=15)
        except ClientError as exc:
            report["after_error"] = str(exc)
        report["pc_id_after"] = client.pc_id
        report["client_state"] = client.state
        await client.disconnect()
        sid = report["before"]["session_id"]
        await _until(lambda: "bot_finished" in side.names(sid), 15)  # a clean close ends at once
    else:
        await _until(lambda: client.state in ("error", "disconnected"), 40)
        report["client_state"] = client.state
        report["disconnect_reason"] = client.disconnect_reason
        sid = report["before"]["session_id"]
        await _until(lambda: "bot_finished" in side.names(sid), 15)
    report["client_events"] = client_events
    report["app_messages"] = app_messages
    report["reconnect_attempts"] = client.stats.reconnects
    report["offers"] = client.stats.offers
    return report


async def _until(predicate: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {within} s")
        await asyncio.sleep(0.05)


def _server_report(side: ServerSide, report: dict[str, Any]) -> dict[str, Any]:
    sid = report["before"]["session_id"]
    report["server_sessions"] = list(side.sessions)
    report["server_events"] = side.names(sid)
    report["server_counts"] = side.counts()
    return report


# -- browser client --------------------------------------------------------------------------------


def _browser_scenario(side: ServerSide, blackout: float, tmp: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import launch_chromium, write_tone_wav

    heard = 0.02
    bundle = _bundle_official_client(tmp / "bundle.js")
    report: dict[str, Any] = {"client": "official-js", "blackout_secs": blackout, "flow": "api/offer"}
    with sync_playwright() as driver, launch_chromium(driver, write_tone_wav(tmp / "tone.wav")) as browser:
        page = browser.new_context().new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text[:200]}"))
        html = '<!doctype html><meta charset="utf-8"><script src="bundle.js"></script>'
        page.route(f"{side.url}{PAGE_PATH}", lambda route: route.fulfill(body=html, content_type="text/html"))
        page.route(f"{side.url}{BUNDLE_PATH}", lambda r: r.fulfill(body=bundle, content_type="application/javascript"))
        page.goto(f"{side.url}{PAGE_PATH}")
        page.wait_for_function("() => typeof window.officialConnect === 'function'", timeout=10000)
        page.evaluate("(a) => window.officialConnect(a)", {"shape": "webrtcRequestParams", "base": side.url})
        page.wait_for_function(f"() => window.__official.peak > {heard}", timeout=20000)
        report["before"] = page.evaluate(_COUNT_JS)
        side.wait_keepalive(report["before"]["session_id"])
        drop_udp()
        page.wait_for_timeout(blackout * 1000)
        restore_udp()
        page.evaluate("() => { window.__official.peak = 0; }")
        if blackout < 10:  # within Chrome's 5 s of ICE "disconnected": the same pc comes back
            page.wait_for_function(f"() => window.__official.peak > {heard}", timeout=30000)
            report["echo_after"] = True
        else:
            # The client restarted. Its closePeerConnection() stops the old senders' tracks, which
            # are the very microphone track the new pc sends (client 1.10.8), so the bot hears
            # silence from then on: check the bot's audio reaches the new pc instead of the echo.
            page.wait_for_function("() => window.__official.offers.length >= 2", timeout=30000)
            first = _inbound_audio_packets(page)
            page.wait_for_function(
                f"async () => (await ({_INBOUND_AUDIO_JS})()) > {first + 50}", timeout=30000, polling=200
            )
            report["bot_audio_after"] = True
            # the client drops messages sent before its new channel opens ("Datachannel is not ready")
            page.wait_for_function("() => window.__official.transport.dc?.readyState === 'open'", timeout=15000)
            report["mic_after"] = page.evaluate(
                "() => window.__official.transport.pc.getSenders().map(s => s.track && s.track.readyState)"
            )
        report["after"] = page.evaluate(_COUNT_JS)
        report["offers"] = page.evaluate("() => window.__official.offers.map(o => [o.pc_id, o.restart_pc])")
        report["client_states"] = page.evaluate("() => window.__official.states")
        report["console_tail"] = console[-30:]
        page.evaluate("() => window.officialDisconnect()")
        sid = report["before"]["session_id"]
        deadline = time.monotonic() + 15
        while "bot_finished" not in side.names(sid):  # a clean close ends at once
            assert time.monotonic() < deadline, side.names(sid)
            time.sleep(0.05)
    return report


#: The ``count`` request; a refusal comes back as ``{"error": ...}`` instead of raising.
_COUNT_JS = """() => window.officialRequest("count", {}).catch(
  (e) => ({error: `${e && e.constructor.name}: ${JSON.stringify(e)} ${e && e.message}`}))"""
_INBOUND_AUDIO_JS = """async () => {
  let n = 0;
  (await window.__official.transport.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") n += s.packetsReceived;
  });
  return n;
}"""


def _inbound_audio_packets(page: Any) -> int:
    """Bot audio packets the client's current pc has received."""
    return int(page.evaluate(_INBOUND_AUDIO_JS))


PAGE_PATH = "/__official__/index.html"
BUNDLE_PATH = "/__official__/bundle.js"


def _bundle_official_client(out: Path) -> bytes:
    """The pinned official client (tests/browser/official_client), bundled by its esbuild."""
    client = ROOT / "tests" / "browser" / "official_client"
    esbuild = client / "node_modules" / ".bin" / "esbuild"
    subprocess.run(
        [str(esbuild), "src/main.js", "--bundle", "--format=iife", "--target=es2020", f"--outfile={out}"],
        cwd=client,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out.read_bytes()


# -- entry point -----------------------------------------------------------------------------------


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("client", choices=["python", "browser"])
    parser.add_argument("--blackout", type=float, required=True)
    parser.add_argument("--resume-window", type=float, default=30.0)
    parser.add_argument("--flow", choices=["api", "start"], default="api")
    args = parser.parse_args()
    if not _in_own_namespace():
        raise SystemExit("run this under `unshare -n` (see run_in_namespace): it changes the firewall")
    bring_up_loopback()
    with tempfile.TemporaryDirectory() as tmp, serve_echo(Path(tmp), args.resume_window) as side:
        if args.client == "python":
            report = asyncio.run(_python_scenario(side, args.blackout, args.flow))
        else:
            report = _browser_scenario(side, args.blackout, Path(tmp))
        report = _server_report(side, report)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
