"""A token bucket: a sustained rate with a burst allowance, on an injectable clock."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second refill a bucket of ``burst``; each accepted event takes one.

    The bucket starts full, so a client may send ``burst`` events back to back before the
    sustained rate applies. ``clock`` (monotonic seconds) is injectable for tests.
    """

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def try_take(self) -> bool:
        """Take one token if there is one; False means the event is over the limit."""
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)  # a clock that steps back refills nothing
        self._stamp = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    @property
    def tokens(self) -> float:
        """Tokens left at the last :meth:`try_take` (for tests and diagnostics)."""
        return self._tokens


__all__ = ["TokenBucket"]
