"""The data-channel fuzz target: a real aiortc peer whose channel carries hypothesis-drawn batches.

One fuzzing peer (a :class:`~tests.support.peer.TestPeer` with keepalive pings) is connected to the
:class:`~tests.fuzz.harness.FuzzEnv` server next to its good echoing client and reused for every
case. A case is a batch of frames drawn from the data-channel strategies of tests/webrtc/hostile.py
plus bigger junk (JSON from tests/fuzz/strategies.py, deep nesting, strings just under and over
``limits.max_message_bytes``, invalid UTF-8 in text frames, floods), all put on the wire raw (so
aiortc's own size check never filters them). After each batch:

* the same session still answers: a ``client-message`` gets its ``server-response`` (and every
  fuzzed request with a usable id that got through gets ``server-response``, ``error-response``
  or ``bot-ready``); every few cases ``client-ready`` gets ``bot-ready``;
* the server-side connection is open, still registered, and counted no ``dispatch_failed`` or
  ``bad_frame`` (bugs of ours, not client junk);
* no traceback and no error-level log line appeared.

A peer found dead before a case is a failure; a fresh one replaces it so the run goes on.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from typing import Any

from aiortc import rtcsctptransport
from hypothesis import strategies as st

from runner.limits import DEFAULT_LIMITS, JsonLimitError, Limits, loads_bounded
from runner.processors.rtvi.send_text import SEND_TEXT, SendText, parse_send_text
from runner.rtvi_protocol import is_rtvi
from runner.webrtc import SmallWebRTCConnection
from runner.webrtc.junk import JunkKind
from runner.webrtc.rtvi import PASSIVE_TYPES
from tests.fuzz.harness import FuzzEnv
from tests.fuzz.strategies import deep_nesting
from tests.fuzz.strategies import json_values as wide_json_values
from tests.support.peer import TestPeer
from tests.webrtc.hostile import (
    ask,
    frames,
    json_values,
    open_peer,
    ready,
    rtvi_envelopes,
    send_raw,
    signalling_envelopes,
)

TEXT = rtcsctptransport.WEBRTC_STRING
BINARY = rtcsctptransport.WEBRTC_BINARY
LIMIT = DEFAULT_LIMITS.max_message_bytes
#: A request this close to the limit may get an answer too big for the channel: not required.
ANSWER_HEADROOM = 1024
#: Junk that swallows a request which would otherwise be answered.
DROPS = {JunkKind.RATE_LIMITED, JunkKind.INBOX_FULL}
#: Junk that is our bug, never the client's.
BUGS = {JunkKind.DISPATCH_FAILED, JunkKind.BAD_FRAME}
READY_EVERY = 5


@dataclass(frozen=True)
class Frame:
    """One frame as it goes on the wire: an SCTP PPID and its bytes, sent ``repeat`` times."""

    ppid: int
    payload: bytes
    repeat: int = 1


def _text(value: str | bytes) -> Frame:
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return Frame(TEXT, data) if data else Frame(rtcsctptransport.WEBRTC_STRING_EMPTY, b"\x00")


def _binary(data: bytes) -> Frame:
    return Frame(BINARY, data) if data else Frame(rtcsctptransport.WEBRTC_BINARY_EMPTY, b"\x00")


def _frame(value: str | bytes) -> Frame:
    """What ``RTCDataChannel.send`` would put on the wire for ``value`` (str as text, bytes as binary)."""
    return _text(value) if isinstance(value, str) else _binary(value)


def _sized(n: int, wrap: int, char: str) -> bytes:
    """A message of ``n`` UTF-8 bytes (to a character): a bare string, an app message, or envelopes nobody answers."""

    def shape(pad: str) -> bytes:
        shapes: list[Any] = [
            pad,
            {"pad": pad},
            {"label": "rtvi-ai", "type": "send-text", "data": {"content": pad}},
            {"type": "signalling", "message": {"type": "trackStatus", "receiver_index": 0, "enabled": pad}},
            {"label": "rtvi-ai", "type": "client-message", "id": {"not": "usable"}, "data": {"t": "big", "d": pad}},
        ]
        chosen = shapes[wrap % len(shapes)]
        return (chosen if isinstance(chosen, str) else json.dumps(chosen, ensure_ascii=False)).encode("utf-8")

    overhead = len(shape(""))
    return shape(char * max(0, (n - overhead) // len(char.encode())))


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


#: Sizes around the limit (exactly on it, just under, just over) and far beyond it.
sizes = st.one_of(st.integers(LIMIT - 64, LIMIT + 64), st.integers(1_000, LIMIT), st.integers(LIMIT, 4 * LIMIT))

single_frames: st.SearchStrategy[Frame] = st.one_of(
    frames.map(_frame),  # tests/webrtc/hostile.py: text, binary, JSON, RTVI, signalling, nesting, pings
    rtvi_envelopes.map(lambda m: _text(json.dumps(m))),
    st.fixed_dictionaries(
        {
            "label": st.just("rtvi-ai"),
            "type": st.sampled_from(["client-message", "client-ready"]),
            "id": st.text(max_size=12) | st.integers(120, 140).map(lambda n: "i" * n) | json_values,
            "data": st.fixed_dictionaries({"t": st.text(max_size=8) | json_values, "d": json_values}) | json_values,
        }
    ).map(lambda m: _text(json.dumps(m))),
    signalling_envelopes.map(lambda m: _text(json.dumps(m))),
    wide_json_values().map(lambda v: _text(json.dumps(v))),  # NaN, infinities, 70-bit integers
    deep_nesting().map(_text),
    st.tuples(sizes, st.integers(0, 4), st.sampled_from(["y", "é", "€", "😀"])).map(lambda t: _text(_sized(*t))),
    st.tuples(sizes, st.integers(0, 4)).map(lambda t: _binary(_sized(t[0], t[1], "b"))),
    st.binary(min_size=1, max_size=64).filter(_not_utf8).map(_text),  # a *text* frame that is not UTF-8
    st.binary(min_size=1, max_size=64).filter(_not_utf8).map(_binary),
    json_values.map(lambda v: _binary(json.dumps(v).encode())),  # binary UTF-8 JSON: an app message
)


def _flood(frame: Frame, n: int) -> Frame:
    return Frame(frame.ppid, frame.payload, n)


#: A batch: a few frames, some of them repeated (a flood of one frame, up to far past the burst).
batches: st.SearchStrategy[list[Frame]] = st.lists(
    st.one_of(
        single_frames,
        single_frames,
        single_frames,
        st.builds(_flood, single_frames.filter(lambda f: len(f.payload) < 2048), st.integers(10, 1500)),
    ),
    min_size=1,
    max_size=12,
)


def expected_answer(frame: Frame, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """The id the server must answer this frame with (when it gets through), or None.

    The oracle follows the protocol: text/binary UTF-8 JSON objects within the limits, an RTVI
    envelope with a string id of at most ``max_request_id_chars``, and a type that gets an
    answer (``client-ready``, ``client-message``, an unsupported one, or a wrongly typed one).
    """
    if frame.ppid not in (TEXT, BINARY) or len(frame.payload) > limits.max_message_bytes - ANSWER_HEADROOM:
        return None
    try:
        text = frame.payload.decode("utf-8")
        if text.startswith("ping"):
            return None
        message = loads_bounded(text, limits.max_json_depth)
    except (UnicodeDecodeError, JsonLimitError):
        return None
    if not is_rtvi(message) or (message.get("type") == "signalling" and message.get("message")):
        return None
    rid, kind = message.get("id"), message.get("type")
    if not isinstance(rid, str) or len(rid) > limits.max_request_id_chars:
        return None
    if kind == SEND_TEXT:  # answered only when malformed (a good one is user text for the pipeline)
        return None if isinstance(parse_send_text(message.get("data")), SendText) else rid
    if isinstance(kind, str) and (kind in PASSIVE_TYPES or kind == "disconnect-bot"):
        return None
    return rid


@dataclass
class DataChannelFuzz:
    """The fuzzing peer and its tallies; one per :class:`FuzzEnv` (see :func:`fuzzer`)."""

    env: FuzzEnv
    peer: TestPeer | None = None
    conn: SmallWebRTCConnection | None = None
    cases: int = 0
    sent: int = 0
    peers_opened: int = 0
    junk: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)

    async def _open(self) -> None:
        server = self.env.server
        assert server is not None
        peer, conn = await open_peer(server, ping_interval=1.0)  # pings: the server's keepalive is on
        if conn.pc_id != peer.pc_id:  # another session's bot started in between: find ours
            conn = next(c for c in server.recorder.connections if c.pc_id == peer.pc_id)
        self.peer, self.conn = peer, conn
        self.peers_opened += 1

    def _dead(self) -> str | None:
        peer, conn, server = self.peer, self.conn, self.env.server
        assert server is not None
        if peer is None or conn is None:
            return "no peer"
        if conn.closed:
            return "server closed the session"
        if server.registry.by_pc_id(peer.pc_id) is None:
            return "session no longer registered"
        if peer.channel is None or peer.channel.readyState != "open":
            return f"data channel {peer.channel.readyState if peer.channel else None}"
        if peer.pc is None or peer.pc.connectionState != "connected":
            return f"peer connection {peer.pc.connectionState if peer.pc else None}"
        return None

    async def _retire(self) -> None:
        if self.conn is not None:
            self.junk.update(self.conn.junk_counts)
        if self.peer is not None:
            await self.peer.close()
        self.peer = self.conn = None

    async def batch(self, frames: list[Frame]) -> list[str]:
        """Send one batch and check the session still answers; returns the problems found (never raises)."""
        problems: list[str] = []
        try:
            await self._batch(frames, problems)
        except Exception as exc:  # e.g. the channel closed under the peer: a failure, and a fresh peer next
            problems.append(f"case {self.cases}: {type(exc).__name__}: {str(exc)[:300]} ({self._dead() or 'alive'})")
            self.outcomes[f"case raised {type(exc).__name__}"] += 1
            await self._retire()
        return problems

    async def _batch(self, frames: list[Frame], problems: list[str]) -> None:
        if self.peer is not None:
            dead = self._dead()
            if dead is not None:
                problems.append(f"fuzz peer died before case {self.cases}: {dead}")
                self.outcomes["peer died"] += 1
                await self._retire()
        if self.peer is None:
            await self._open()
        peer, conn, server = self.peer, self.conn, self.env.server
        assert peer is not None and conn is not None and server is not None
        self.cases += 1
        peer.messages.clear()  # bounded: the answers of this batch only
        server.recorder.events.clear()  # the recording bot keeps every app message otherwise
        before = conn.junk_counts
        expected: set[str] = set()
        for frame in frames:
            rid = expected_answer(frame, self.env.config["limits"])
            if rid is not None:
                expected.add(rid)
            for _ in range(frame.repeat):
                await send_raw(peer, frame.ppid, frame.payload)
                self.sent += 1
        try:
            await ask(peer)  # ordered channel: every frame above was handled before this answer
            self.outcomes["client-message answered"] += 1
        except (TimeoutError, AssertionError):
            problems.append(f"case {self.cases}: client-message got no server-response ({self._dead() or 'alive'})")
            self.outcomes["client-message unanswered"] += 1
        after = conn.junk_counts
        dropped = any(after.get(k, 0) > before.get(k, 0) for k in DROPS)
        if expected and dropped:
            self.outcomes["requests not checked (some dropped by the bounds)"] += len(expected)
        elif expected:
            answers = {
                m.get("id"): m.get("type")
                for m in peer.messages
                if isinstance(m, dict) and m.get("type") in ("server-response", "error-response", "bot-ready")
            }
            for rid in expected:
                kind = answers.get(rid)
                self.outcomes[f"fuzzed request -> {kind or 'NO ANSWER'}"] += 1
                if kind is None:
                    problems.append(f"case {self.cases}: fuzzed request id {rid[:40]!r} got no answer")
        if self.cases % READY_EVERY == 0:
            try:
                await ready(peer)
                self.outcomes["client-ready -> bot-ready"] += 1
            except (TimeoutError, AssertionError):
                problems.append(f"case {self.cases}: client-ready got no bot-ready")
                self.outcomes["client-ready unanswered"] += 1
        bugs = {k: after[k] for k in BUGS if after.get(k, 0) > before.get(k, 0)}
        if bugs:
            problems.append(f"case {self.cases}: junk counted as our bug: {bugs}")
        dead = self._dead()
        if dead is not None:
            problems.append(f"case {self.cases}: fuzz session ended: {dead}")

    async def close(self) -> None:
        """Close the fuzzing peer (its counts join the totals)."""
        await self._retire()

    def junk_totals(self) -> dict[str, int]:
        """Junk counted by kind over every fuzzing peer, the current one included."""
        totals: collections.Counter[str] = collections.Counter({str(k): n for k, n in self.junk.items()})
        if self.conn is not None:
            totals.update({str(k): n for k, n in self.conn.junk_counts.items()})
        return dict(sorted(totals.items()))


def fuzzer(env: FuzzEnv) -> DataChannelFuzz:
    """The environment's data-channel fuzzer (made on first use)."""
    existing = getattr(env, "_datachannel_fuzz", None)
    if existing is None:
        existing = DataChannelFuzz(env)
        env._datachannel_fuzz = existing  # type: ignore[attr-defined]
    assert isinstance(existing, DataChannelFuzz)
    return existing


def datachannel_case(env: FuzzEnv, data: st.DataObject) -> None:
    """One batch of hostile frames on the fuzzing peer's data channel; problems go to ``env.failures``."""
    batch = data.draw(batches, "frames")
    fuzz = fuzzer(env)
    tracebacks, errors = len(env.watch.tracebacks), len(env.watch.errors)
    problems = env.call(fuzz.batch(batch), timeout=120)
    with env.watch.lock:
        if len(env.watch.tracebacks) > tracebacks:
            problems.append(f"traceback logged: {env.watch.tracebacks[-1][:500]}")
        if len(env.watch.errors) > errors:
            problems.append(f"error logged: {env.watch.errors[-1][:500]}")
    env.failures.extend(f"datachannel {p}" for p in problems)


__all__ = ["DataChannelFuzz", "Frame", "batches", "datachannel_case", "expected_answer", "fuzzer"]
