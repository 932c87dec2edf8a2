"""A real server under fuzz: its own event loop thread, a good client echoing meanwhile, and a log watch.

Hypothesis drives test functions synchronously, so the server, the good aiortc client and the
HTTP client live in one background event loop; each case is submitted to it and checked:

* never a 5xx; every 4xx carries a non-empty ``detail`` without a traceback;
* no traceback logged anywhere (structlog events with ``exc_info``, stdlib records with
  ``exc_info``, uncaught thread exceptions);
* a refused request leaves no session behind (``/status``'s ``sessions`` does not grow);
* the good client keeps its session and its echo (:meth:`FuzzEnv.assert_echo`);
* at the end, once the sessions fuzzing created have timed out, threads and memory are back
  near where they started (:meth:`FuzzEnv.settle`).

The ``datachannel`` target (tests/fuzz/datachannel.py) adds a fuzzing aiortc peer to the same
server. ``bench/fuzz.py`` uses the same class with thousands of cases.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
import threading
import time
from collections.abc import Coroutine, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import structlog

from runner.limits import Limits
from tests.fuzz.strategies import loopback_candidate, loopback_only
from tests.support.peer import TestPeer, ToneTrack
from tests.support.server import RunningServer, start_test_server

T = TypeVar("T")

#: The fuzz server: production keepalive, short connect timeout so accepted junk offers expire
#: quickly, room for them, and rates high enough that parsing (not the 429 path) is exercised.
FUZZ_CONFIG: dict[str, Any] = {
    "keepalive_timeout_secs": 5.0,
    "connect_timeout_secs": 3.0,
    "max_sessions": 500,
    # data-channel rates: batches are parsed, floods past the burst still meet the rate limit
    "limits": Limits(
        patch_rate_per_sec=1e6,
        patch_burst=10**9,
        renegotiations_per_min=1e9,
        renegotiation_burst=10**9,
        messages_per_sec=2000.0,
        message_burst=1000,
    ),
}


def rss_mb() -> float:
    """Resident memory of this process in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Snapshot:
    """Threads, memory and sessions at one moment."""

    threads: int
    rss_mb: float
    sessions: int


@dataclass
class LogWatch:
    """Counts warnings per event and keeps every traceback and error-level line seen in logs."""

    tracebacks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: collections.Counter[str] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def structlog_processor(self, _logger: Any, method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        """Record, then drop the event (the fuzz run would otherwise print thousands of lines)."""
        with self.lock:
            if event.get("exc_info") or "exception" in event:
                self.tracebacks.append(f"structlog {event.get('event')}: {str(event)[:2000]}")
            if method in ("warning", "error", "critical", "exception"):
                self.warnings[str(event.get("event"))] += 1
            if method in ("error", "critical", "exception"):
                self.errors.append(f"structlog {event.get('event')}: {str(event)[:2000]}")
        raise structlog.DropEvent

    def record(self, record: logging.LogRecord) -> None:
        """Stdlib records (asyncio, aiortc, aioice, aiohttp)."""
        message = record.getMessage()
        with self.lock:
            if record.exc_info or "Traceback" in message:
                exc = record.exc_info[1] if record.exc_info else None
                self.tracebacks.append(f"{record.name}: {message[:2000]} ({type(exc).__name__}: {exc})")
            if record.levelno >= logging.WARNING:
                self.warnings[f"{record.name}: {message[:60]}"] += 1
            if record.levelno >= logging.ERROR:
                self.errors.append(f"{record.name}: {message[:2000]}")


class _Handler(logging.Handler):
    def __init__(self, watch: LogWatch) -> None:
        super().__init__(logging.DEBUG)
        self.watch = watch

    def emit(self, record: logging.LogRecord) -> None:
        self.watch.record(record)


@dataclass
class Outcome:
    """One fuzz case: what was sent where, and what came back."""

    target: str
    status: int
    detail: str | None
    sessions_before: int
    sessions_after: int


class FuzzEnv:
    """Server + good client in a background loop; call :meth:`start` first, :meth:`stop` last."""

    def __init__(self, **config: Any) -> None:
        self.config = {**FUZZ_CONFIG, **config}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server", daemon=True)
        self.watch = LogWatch()
        self.counts: collections.Counter[tuple[str, int]] = collections.Counter()
        self.reasons: collections.Counter[tuple[str, str]] = collections.Counter()
        self.failures: list[str] = []
        self.server: RunningServer | None = None
        self.good: TestPeer | None = None
        self.accepted_pc_ids: collections.deque[str] = collections.deque(maxlen=20)
        self.before: Snapshot | None = None
        self._http: aiohttp.ClientSession | None = None
        self._saved_structlog: dict[str, Any] = {}
        self._saved_excepthook = threading.excepthook
        self._handler = _Handler(self.watch)

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and connect the good client (its echo must flow before fuzzing)."""
        self._saved_structlog = structlog.get_config()
        structlog.configure(
            processors=[structlog.contextvars.merge_contextvars, self.watch.structlog_processor],
            cache_logger_on_first_use=False,
        )
        logging.getLogger().addHandler(self._handler)
        threading.excepthook = self._thread_died
        self.thread.start()
        self.call(self._start())
        self.before = self.snapshot()

    async def _start(self) -> None:
        self.server = await start_test_server(None, **self.config)
        self._http = aiohttp.ClientSession()
        self.good = TestPeer(self.server.url, mic=ToneTrack())
        await self.good.connect()
        await self.good.wait_open()
        await self.good.wait_audio(frames=25, min_level=500.0, within=20.0)

    def stop(self) -> None:
        """Close everything and restore the logging set-up."""
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            logging.getLogger().removeHandler(self._handler)
            threading.excepthook = self._saved_excepthook
            structlog.configure(**self._saved_structlog)

    async def _stop(self) -> None:
        if self.good is not None:
            await self.good.close()
        if self._http is not None:
            await self._http.close()
        if self.server is not None:
            await self.server.runner.cleanup()

    def _thread_died(self, args: threading.ExceptHookArgs) -> None:
        with self.watch.lock:
            self.watch.tracebacks.append(f"thread {args.thread}: {args.exc_type.__name__}: {args.exc_value}")

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` in the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # -- cases --------------------------------------------------------------------------------------

    def send(self, target: str, method: str, path: str, body: bytes) -> Outcome:
        """One request; the outcome is counted and checked (failures are collected, not raised)."""
        outcome = self.call(self._send(target, method, path, body))
        self.counts[(target, outcome.status)] += 1
        if outcome.detail:
            self.reasons[(target, re.sub(r"\d+", "N", outcome.detail)[:60])] += 1
        problems = self._problems(outcome)
        if problems:
            self.failures.append(f"{target} {method} {path} -> {outcome.status} {outcome.detail!r}: {problems}")
        return outcome

    async def _send(self, target: str, method: str, path: str, body: bytes) -> Outcome:
        assert self.server is not None and self._http is not None
        before = self.server.registry.counts()["sessions"]
        headers = {"Content-Type": "application/json"}
        async with self._http.request(method, self.server.url + path, data=body, headers=headers) as resp:
            raw = await resp.read()
            status = resp.status
        detail: str | None = None
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            if isinstance(payload.get("detail"), str):
                detail = payload["detail"]
            if status == 200 and isinstance(payload.get("pc_id"), str):
                self.accepted_pc_ids.append(payload["pc_id"])
        after = self.server.registry.counts()["sessions"]
        return Outcome(target, status, detail, before, after)

    def _problems(self, outcome: Outcome) -> list[str]:
        problems = []
        if outcome.status >= 500:
            problems.append("5xx")
        if outcome.status >= 400 and (not outcome.detail or "Traceback" in outcome.detail):
            problems.append("no clear reason")
        grown = outcome.sessions_after - outcome.sessions_before
        if grown > (1 if outcome.status == 200 else 0):
            problems.append(f"sessions grew by {grown}")
        with self.watch.lock:
            if self.watch.tracebacks:
                problems.append(f"traceback logged: {self.watch.tracebacks[-1][:500]}")
        return problems

    # -- typed entry points -------------------------------------------------------------------------

    def offer(self, body: Any, path: str = "/api/offer") -> Outcome:
        """POST an offer body (an object is sanitised: its SDP's candidates stay on loopback)."""
        if isinstance(body, dict) and isinstance(body.get("sdp"), str):
            body = {**body, "sdp": loopback_only(body["sdp"])}
        return self.send("offer" if path == "/api/offer" else "session_offer", "POST", path, _encode(body))

    def patch(self, body: Any, path: str = "/api/offer") -> Outcome:
        """PATCH candidates (every candidate string is forced onto loopback)."""
        if isinstance(body, dict) and isinstance(body.get("candidates"), list):
            body = {**body, "candidates": [_loopback_entry(c) for c in body["candidates"]]}
        return self.send("patch" if path == "/api/offer" else "session_patch", "PATCH", path, _encode(body))

    def raw(self, request: bytes) -> Outcome:
        """Write a whole raw HTTP request on a fresh socket; status 0 if the server just closed it."""
        outcome = self.call(self._raw(request))
        self.counts[("raw", outcome.status)] += 1
        problems = self._problems(outcome)
        if problems:
            self.failures.append(f"raw {request[:80]!r} -> {outcome.status}: {problems}")
        return outcome

    async def _raw(self, request: bytes) -> Outcome:
        assert self.server is not None
        before = self.server.registry.counts()["sessions"]
        port = int(self.server.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = b""
        try:
            writer.write(request)
            # a framing that promises more body than sent leaves the server waiting: give up on
            # an answer after a second (status 0) and close, as a vanished client would
            answer = await asyncio.wait_for(reader.read(), 1.0)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()
        status, detail = 0, None
        first, _, rest = answer.partition(b"\r\n")
        if first.startswith(b"HTTP/1."):
            status = int(first.split()[1])
            detail = rest.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")[:200] or None
        return Outcome("raw", status, detail, before, self.server.registry.counts()["sessions"])

    def start_session(self, body: bytes) -> Outcome:
        """POST /start with raw bytes."""
        return self.send("start", "POST", "/start", body)

    def new_session_id(self) -> str:
        """A fresh ``/start`` session id (for the ``/sessions/{id}/api/offer`` routes)."""

        async def start() -> str:
            assert self.server is not None and self._http is not None
            async with self._http.post(self.server.url + "/start", json={}) as resp:
                sid: str = (await resp.json())["sessionId"]
                return sid

        return self.call(start())

    def session_id_of(self, pc_id: str) -> str | None:
        """The id of the live session that owns ``pc_id``, if any."""

        async def lookup() -> str | None:
            assert self.server is not None
            session = self.server.registry.by_pc_id(pc_id)
            return None if session is None else str(session.session_id)

        return self.call(lookup())

    def good_pc_id(self) -> str:
        """The good client's pc_id."""
        assert self.good is not None and self.good.pc_id is not None
        return self.good.pc_id

    # -- invariants ---------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Threads, memory and sessions now."""

        async def sessions() -> int:
            assert self.server is not None
            return int(self.server.registry.counts()["sessions"])

        return Snapshot(threading.active_count(), rss_mb(), self.call(sessions()))

    def assert_echo(self, frames: int = 25, within: float = 20.0) -> None:
        """The good client's session is still there and its audio keeps coming back."""
        assert self.good is not None and self.server is not None
        start = self.good.audio_frames

        async def wait() -> None:
            assert self.good is not None and self.server is not None
            await self.good.wait_audio(frames=start + frames, within=within)
            assert self.server.registry.by_pc_id(self.good_pc_id()) is not None

        self.call(wait(), timeout=within + 5)

    def settle(self, within: float = 30.0) -> Snapshot:
        """Wait until only the good client's session remains (fuzzed ones time out), then snapshot."""
        deadline = time.monotonic() + within
        while True:
            now = self.snapshot()
            if now.sessions <= 1 or time.monotonic() > deadline:
                return now
            time.sleep(0.25)

    def report(self, reasons: int = 3) -> str:
        """Counts per target and status (and its commonest refusal reasons), warnings per event."""
        lines = []
        for target in sorted({t for t, _ in self.counts}):
            seen = {s: n for (t, s), n in sorted(self.counts.items()) if t == target}
            fives = sum(n for s, n in seen.items() if s >= 500)
            lines.append(f"{target:<14} cases={sum(seen.values()):<6} 5xx={fives:<3} statuses={seen}")
            top = [(n, r) for (t, r), n in self.reasons.most_common() if t == target][:reasons]
            lines.extend(f"    x{n:<5} {r}" for n, r in top)
        errors = len(self.watch.errors)
        lines.append(f"tracebacks={len(self.watch.tracebacks)} error lines={errors} failures={len(self.failures)}")
        for event, n in self.watch.warnings.most_common(8):
            lines.append(f"  warning x{n}: {event}")
        return "\n".join(lines)


def _encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def _loopback_entry(entry: Any) -> Any:
    if isinstance(entry, dict) and isinstance(entry.get("candidate"), str):
        return {**entry, "candidate": loopback_candidate(entry["candidate"])}
    return entry
