"""Liveness bookkeeping on a clock the test controls: what is due, whatever the order of events."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from runner.webrtc.liveness import PING_FRESH_SECS, Liveness, Verdict

KA, WINDOW, CONNECT = 5.0, 30.0, 10.0

events = st.lists(
    st.tuples(st.sampled_from(["ping", "suspend", "resume", "new_pc", "connected", "wait"]), st.floats(0, 12)),
    max_size=40,
)


@given(events)
@example([("connected", 0), ("ping", 1), ("wait", 5.5)])  # pings stopped: suspend
@example([("connected", 0), ("ping", 1), ("suspend", 6), ("wait", 30.5)])  # window over: lost
@example([("suspend", 0), ("new_pc", 1), ("wait", 11)])  # a restart's connect time does not count
def test_verdict_follows_the_model(trace: list[tuple[str, float]]) -> None:
    live = Liveness(KA, WINDOW, CONNECT)
    now, connected = 0.0, False
    live.new_pc(now)
    started, last_ping, suspended_at = now, None, None
    for name, dt in trace:
        now += dt
        if name == "ping":
            live.ping(now)
            last_ping = now
        elif name == "suspend":
            assert live.suspend(now) == (suspended_at is None)
            suspended_at = suspended_at if suspended_at is not None else now
        elif name == "resume":
            lasted = live.resume(now)
            assert lasted == (None if suspended_at is None else now - suspended_at)
            suspended_at = None
        elif name == "new_pc":
            live.new_pc(now)
            started, last_ping, connected = now, None, False
        elif name == "connected":
            connected = True
        verdict = live.verdict(now, connected)
        if suspended_at is not None:
            expected = Verdict.RESUME_WINDOW_EXPIRED if now - suspended_at > WINDOW else None
        elif not connected and now - started > CONNECT:
            expected = Verdict.CONNECT_TIMEOUT
        elif last_ping is not None and now - last_ping > KA:
            expected = Verdict.KEEPALIVE_TIMEOUT
        else:
            expected = None
        assert verdict is expected, (name, now, verdict, expected)
        assert live.suspended == (suspended_at is not None)
        assert live.pings_fresh(now) == (None if last_ping is None else now - last_ping < PING_FRESH_SECS)


def test_without_keepalive_pings_never_suspend_and_the_step_stays_short() -> None:
    live = Liveness(None, WINDOW, CONNECT)
    live.ping(0.0)
    assert live.verdict(1000.0, pc_connected=True) is None
    assert live.step == 0.25 and Liveness(0.4, WINDOW, CONNECT).step == 0.1
    assert not Liveness(KA, 0.0, CONNECT).can_suspend
