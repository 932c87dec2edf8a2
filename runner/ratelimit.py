"""A token bucket: a sustained rate with a burst allowance, on an injectable clock.

Used for every client-driven rate (PATCH and renegotiation per session, data-channel messages
per client). The bucket starts full, so ``burst`` events may come back to back before the
sustained ``rate`` (tokens per second) applies.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    """``rate`` tokens per second refill a bucket of ``burst``; each accepted event takes one."""

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self) -> float | None:
        """Take a token: None if granted, else the seconds until one is available (``Retry-After``)."""
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)  # a clock that steps back refills nothing
        self._stamp = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate

    def try_take(self) -> bool:
        """Take one token if there is one; False means the event is over the limit."""
        return self.take() is None

    @property
    def tokens(self) -> float:
        """Tokens left after the last take (for tests and diagnostics)."""
        return self._tokens


__all__ = ["Clock", "TokenBucket"]
