"""Token buckets and the per-session table, on a fake clock (no sleeping)."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from runner.limits import Limits
from runner.ratelimit import TokenBucket
from runner.server.ratelimit import RateLimiter


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@given(
    rate=st.floats(min_value=0.01, max_value=100.0),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0.0, max_value=5.0), max_size=200),
)
@example(rate=1.0, burst=1, gaps=[0.0, 0.0, 1.0])
def test_never_more_than_burst_plus_rate_times_elapsed(rate: float, burst: int, gaps: list[float]) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock=clock)
    granted = 0
    for gap in gaps:
        clock.now += gap
        wait = bucket.take()
        if wait is None:
            granted += 1
        else:
            assert 0 < wait <= 1.0 / rate + 1e-9
    assert granted <= burst + rate * sum(gaps) + 1e-6


@given(rate=st.floats(min_value=0.01, max_value=100.0), burst=st.integers(min_value=1, max_value=50))
def test_burst_back_to_back_then_refused_then_granted_after_retry_after(rate: float, burst: int) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock=clock)
    assert [bucket.take() for _ in range(burst)] == [None] * burst
    wait = bucket.take()
    assert wait is not None
    clock.now += wait * 0.5
    assert bucket.take() is not None  # too early
    clock.now += wait * 1.01
    assert bucket.take() is None  # waiting as told is enough


def test_the_table_forgets_ended_sessions() -> None:
    alive = {"a", "b"}
    clock = FakeClock()
    rates = RateLimiter(Limits(patch_burst=1), alive=lambda sid: sid in alive, clock=clock)
    assert rates.for_session("a").patch.take() is None
    assert rates.for_session("a").patch.take() is not None  # same buckets for the same session
    rates.for_session("b")
    alive.discard("a")
    rates.for_session("c")
    assert len(rates) == 2
    assert rates.for_session("a").patch.take() is None  # a new "a" starts full
