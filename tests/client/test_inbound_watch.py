"""The client's stand-in for ICE ``disconnected``: silence on the pc's packet counter."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from runner.client.reconnect import InboundWatch

SILENCE = 3.0

#: (packets received since the last read, seconds since the last read)
steps = st.lists(st.tuples(st.integers(0, 5), st.floats(0.0, 2.0, allow_nan=False)), max_size=60)


@given(steps)
@example([(1, 0.5)] + [(0, 0.5)] * 6)  # exactly the silence period: disconnected
@example([(1, 0.5)] + [(0, 0.5)] * 5 + [(1, 0.5)])  # one packet just in time: still connected
def test_disconnected_exactly_while_the_counter_has_not_moved_for_the_silence_period(
    trace: list[tuple[int, float]],
) -> None:
    watch = InboundWatch(SILENCE)
    now, packets, last_change = 0.0, 0, 0.0
    watch.observe(packets, now)
    for new, dt in trace:
        now += dt
        packets += new
        if new:
            last_change = now
        assert watch.observe(packets, now) == (now - last_change >= SILENCE)
