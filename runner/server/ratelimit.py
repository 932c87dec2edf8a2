"""Per-session request rates (PATCH, renegotiation): one :class:`TokenBucket` pair per session."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from runner.limits import Limits
from runner.ratelimit import Clock, TokenBucket


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
                patch=TokenBucket(limits.patch_rate_per_sec, limits.patch_burst, clock=self.clock),
                renegotiation=TokenBucket(
                    limits.renegotiations_per_min / 60.0, limits.renegotiation_burst, clock=self.clock
                ),
            )
            self._rates[session_id] = rates
        return rates

    def __len__(self) -> int:
        return len(self._rates)


__all__ = ["RateLimiter", "SessionRates"]
