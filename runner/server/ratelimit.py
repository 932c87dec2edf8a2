"""Token buckets for per-session request rates (PATCH, renegotiation), with an injectable clock.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; a request
takes one token or is refused with the seconds until one is available (for ``Retry-After``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from runner.limits import Limits

Clock = Callable[[], float]


class TokenBucket:
    """``burst`` requests back to back, then ``rate`` per second."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def take(self) -> float | None:
        """Take a token: None if granted, else the seconds until the next token."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + max(0.0, now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate


@dataclass
class SessionRates:
    """The buckets of one session."""

    patch: TokenBucket
    renegotiation: TokenBucket


@dataclass
class RateLimiter:
    """Buckets per session id, built from :class:`Limits`; entries of ended sessions are pruned.

    ``alive`` tells whether a session id still exists; entries whose session is gone are dropped
    whenever a new one is created, so the table never holds more than the live sessions plus one.
    """

    limits: Limits
    alive: Callable[[str], bool]
    clock: Clock = time.monotonic
    _rates: dict[str, SessionRates] = field(default_factory=dict)

    def for_session(self, session_id: str) -> SessionRates:
        """The buckets of ``session_id`` (created full on first use)."""
        rates = self._rates.get(session_id)
        if rates is None:
            for stale in [sid for sid in self._rates if not self.alive(sid)]:
                del self._rates[stale]
            limits = self.limits
            rates = SessionRates(
                patch=TokenBucket(limits.patch_rate_per_sec, limits.patch_burst, self.clock),
                renegotiation=TokenBucket(limits.renegotiations_per_min / 60.0, limits.renegotiation_burst, self.clock),
            )
            self._rates[session_id] = rates
        return rates

    def __len__(self) -> int:
        return len(self._rates)


__all__ = ["Clock", "RateLimiter", "SessionRates", "TokenBucket"]
