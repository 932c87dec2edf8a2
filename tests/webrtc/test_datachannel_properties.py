"""Properties of the data channel's input handling, without a network: never raises, every frame
classified as an oracle says, every drop counted once, memory bounded."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import structlog
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runner.limits import DEFAULT_LIMITS, Limits, json_depth
from runner.processors.rtvi.send_text import SendText, parse_send_text
from runner.ratelimit import TokenBucket
from runner.webrtc.datachannel import ACCEPTED, APP_MESSAGE, PING, TRACK_STATUS, DataChannelLink
from runner.webrtc.junk import JunkCounter, JunkKind
from runner.webrtc.rtvi import PASSIVE_TYPES, RtviSession
from tests.webrtc.hostile import frames, json_values, nested, rtvi_envelopes

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: No rate limit in the classification properties (the bucket has its own).
UNLIMITED = Limits(messages_per_sec=1e9, message_burst=10**9)


def _logger() -> Any:
    return structlog.get_logger("tests.datachannel").bind(pc_id="pc-test")


class Recorded:
    """A link whose callbacks record what they got."""

    def __init__(self, limits: Limits = UNLIMITED, clock: Any = None) -> None:
        self.pings = 0
        self.statuses: list[tuple[int, bool]] = []
        self.messages: list[dict[str, Any]] = []
        extra = {"clock": clock} if clock is not None else {}
        self.link = DataChannelLink(
            on_ping=self._ping,
            on_track_status=lambda i, e: self.statuses.append((i, e)),
            on_message=self.messages.append,
            logger=_logger,
            limits=limits,
            **extra,
        )

    def _ping(self) -> None:
        self.pings += 1


def expected_kind(frame: str | bytes, limits: Limits) -> str:
    """What a frame is, decided independently of the link's code."""
    raw = frame if isinstance(frame, bytes) else frame.encode("utf-8")
    if len(raw) > limits.max_message_bytes:
        return JunkKind.TOO_LARGE
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return JunkKind.BINARY_NOT_UTF8
    if text.startswith("ping"):
        return PING
    try:
        value = json.loads(text)
    except RecursionError:
        return JunkKind.TOO_DEEP
    except ValueError:
        return JunkKind.NOT_JSON
    if json_depth(value) > limits.max_json_depth:
        return JunkKind.TOO_DEEP
    if not isinstance(value, dict):
        return JunkKind.UNEXPECTED_JSON
    if value.get("type") == "signalling" and value.get("message"):
        payload = value["message"]
        if isinstance(payload, dict) and payload.get("type") == "trackStatus":
            index, enabled = payload.get("receiver_index"), payload.get("enabled")
            receivers = limits.max_audio_sections + limits.max_video_sections
            if type(index) is int and 0 <= index < receivers and type(enabled) is bool:
                return TRACK_STATUS
        return JunkKind.BAD_SIGNALLING
    return APP_MESSAGE


@FAST
@given(st.lists(frames, max_size=8))
@example([nested(30_000)])  # RecursionError in json.loads used to end the session
@example([nested(33), nested(32)])  # just over / at max_json_depth
@example(["x" * 60 * 1024, "y" * (64 * 1024 + 1), b"\xff\xfe", b"\x00" * 10, "ping: 1795235330336"])
@example(['{"type":"signalling","message":{"type":"trackStatus","receiver_index":10000000,"enabled":true}}'])
@example(['{"type":"signalling","message":{"type":"trackStatus","receiver_index":true,"enabled":1}}'])
@example(['{"type":"signalling"}', '{"type":"signalling","message":[]}', "[1, 2]", "null", "NaN", "1e999"])
def test_every_frame_is_classified_and_counted(batch: list[str | bytes]) -> None:
    rec = Recorded()
    outcomes = [rec.link.handle_text(frame) for frame in batch]  # never raises
    assert outcomes == [expected_kind(frame, UNLIMITED) for frame in batch]
    assert JunkKind.DISPATCH_FAILED not in outcomes
    got = Counter(outcomes)
    assert rec.pings == got[PING] and len(rec.statuses) == got[TRACK_STATUS] and len(rec.messages) == got[APP_MESSAGE]
    assert rec.link.junk.counts == {kind: n for kind, n in got.items() if kind not in ACCEPTED}
    assert all(isinstance(m, dict) for m in rec.messages)


@FAST
@given(st.lists(frames, min_size=1, max_size=30))
def test_each_kind_is_warned_once_and_summarised_with_its_count(batch: list[str | bytes]) -> None:
    rec = Recorded()
    with structlog.testing.capture_logs() as logs:
        outcomes = [rec.link.handle_text(frame) for frame in batch]
        rec.link.junk.log_summary()
        rec.link.junk.log_summary()  # once only
    junk = Counter(o for o in outcomes if o not in ACCEPTED)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert sorted(e["kind"] for e in warnings) == sorted(junk)
    assert all(e["event"] == "client_junk" and e["pc_id"] == "pc-test" for e in warnings)
    summaries = [e for e in logs if e["event"] == "client_junk_summary"]
    if junk:
        assert len(summaries) == 1 and summaries[0]["counts"] == dict(junk) and summaries[0]["total"] == junk.total()
    else:
        assert summaries == []
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 500),
    burst=st.integers(1, 300),
    steps=st.lists(st.tuples(st.floats(0, 2), st.integers(0, 50)), max_size=30),
)
def test_token_bucket_never_exceeds_burst_plus_rate(rate: float, burst: int, steps: list[tuple[float, int]]) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock=clock)
    assert sum(bucket.try_take() for _ in range(burst + 5)) == burst  # starts full, then empty
    elapsed = accepted = 0.0
    for dt, count in steps:
        clock.now += dt
        elapsed += dt
        accepted += sum(bucket.try_take() for _ in range(count))
        assert accepted <= rate * elapsed + 1e-6  # emptied above, so only the refill can be spent
    clock.now += (burst + 1) / rate  # long enough to refill completely, and no further
    assert sum(bucket.try_take() for _ in range(burst + 5)) == burst


def test_rate_limit_counts_pings_too_and_refills() -> None:
    clock = FakeClock()
    rec = Recorded(Limits(messages_per_sec=10, message_burst=5), clock=clock)
    outcomes = [rec.link.handle_text("ping: 1") for _ in range(8)]
    assert outcomes == [PING] * 5 + [JunkKind.RATE_LIMITED] * 3
    clock.now += 0.1  # one token
    assert rec.link.handle_text('{"a": 1}') == APP_MESSAGE
    assert rec.link.handle_text('{"a": 2}') == JunkKind.RATE_LIMITED
    assert rec.pings == 5 and rec.messages == [{"a": 1}] and rec.link.junk.counts == {"rate_limited": 4}
    clock.now -= 50  # a clock stepping back gives nothing away
    assert rec.link.handle_text("ping") == JunkKind.RATE_LIMITED


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(list(JunkKind)), max_size=40))
def test_junk_counter_counts_add_up(kinds: list[JunkKind]) -> None:
    counter = JunkCounter(_logger)
    with structlog.testing.capture_logs() as logs:
        for kind in kinds:
            counter.record(kind, detail=1)
    assert counter.counts == dict(Counter(str(k) for k in kinds)) and counter.total == len(kinds)
    assert [e["kind"] for e in logs] == list(dict.fromkeys(str(k) for k in kinds))


# -- RTVI --------------------------------------------------------------------------------------


class RtviHarness:
    def __init__(self, limits: Limits = DEFAULT_LIMITS, answer: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fired: list[tuple[Any, ...]] = []
        self.answer = answer
        self.rtvi = RtviSession(self._send, self._fire, lambda _name: True, _logger, limits=limits)

    def _send(self, obj: Any) -> bool:
        self.sent.append(json.loads(json.dumps(obj)))  # what goes out must be JSON
        return True

    async def _fire(self, name: str, *args: Any) -> None:
        self.fired.append((name, *args))
        if name == "client-message" and self.answer and args[2] is not None:
            self.rtvi.send_server_response(args[2], args[0], {"echo": args[1]})


def _usable_id(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and len(raw) <= DEFAULT_LIMITS.max_request_id_chars)


@FAST
@given(rtvi_envelopes)
@example({"label": "rtvi-ai", "type": 7, "id": "m1"})
@example({"label": "rtvi-ai", "type": "client-message", "id": ["x"], "data": {"t": "a"}})
@example({"label": "rtvi-ai", "type": "client-message", "id": "m2", "data": "not a dict"})
@example({"label": "rtvi-ai", "type": "client-ready", "id": "m3", "data": {"version": {"deep": [1]}}})
@example({"label": "rtvi-ai", "type": "bogus-type", "id": "x" * 10_000})
@example({"label": "rtvi-ai", "type": None})
@example({"label": "rtvi-ai", "type": "send-text", "data": {"content": "x", "options": {"audio_response": 1}}})
@example({"label": "rtvi-ai", "type": "send-text", "id": "m5", "data": {"content": "hi"}})
def test_rtvi_envelopes_with_any_field_types(envelope: dict[str, Any]) -> None:
    h = RtviHarness()
    asyncio.run(h.rtvi.handle(envelope))  # never raises
    raw_id, msg_type = envelope.get("id"), envelope.get("type")
    counts = h.rtvi.junk.counts
    if not _usable_id(raw_id):
        assert h.sent == [] and h.fired == [] and counts == {"bad_rtvi": 1}
        return
    assert all(m.get("id") == raw_id for m in h.sent)  # answers are addressed to the request, or to nobody
    if not isinstance(msg_type, str):
        assert counts == {"bad_rtvi": 1}
        assert [m["type"] for m in h.sent] == ([] if raw_id is None else ["error-response"])
    elif msg_type == "client-ready":
        assert [m["type"] for m in h.sent] == ["bot-ready"] and h.fired == [("client-ready",)]
    elif msg_type == "client-message":
        data = envelope.get("data")
        well_formed = isinstance(data, dict) and isinstance(data.get("t"), str)
        # a bad request is refused; a good one nobody answered is refused only if it has an id
        assert [m["type"] for m in h.sent] == ([] if well_formed and raw_id is None else ["error-response"])
        assert len(h.fired) == well_formed
    elif msg_type == "disconnect-bot":
        assert h.sent == [] and h.fired == [("disconnect-bot",)]
    elif msg_type == "send-text":
        # a good one goes on to the pipeline (as an app message); a malformed one is refused, with the reason
        good = isinstance(parse_send_text(envelope.get("data")), SendText)
        assert [m["type"] for m in h.sent] == ([] if good else ["error-response"])
        assert counts == ({} if good else {"bad_rtvi": 1})
    elif msg_type in PASSIVE_TYPES:
        assert h.sent == [] and counts == {}
    else:
        assert [m["type"] for m in h.sent] == ["error-response"] and counts == {"unsupported_rtvi_type": 1}


@settings(max_examples=50, deadline=None)
@given(memory=st.integers(16, 64), requests=st.integers(0, 200), payload=json_values)
def test_answered_ids_are_bounded_oldest_forgotten_first(memory: int, requests: int, payload: Any) -> None:
    h = RtviHarness(Limits(answered_ids_memory=memory), answer=True)

    async def run() -> None:
        for i in range(requests):
            await h.rtvi.handle(
                {"label": "rtvi-ai", "type": "client-message", "id": f"r{i}", "data": {"t": "t", "d": payload}}
            )

    asyncio.run(run())
    assert h.rtvi.answered_count == min(memory, requests)
    assert [m["type"] for m in h.sent] == ["server-response"] * requests  # answered: no error-response
    remembered = [i for i in range(requests) if h.rtvi.answered(f"r{i}")]
    assert remembered == list(range(max(0, requests - memory), requests))
