"""Liveness of one client connection: keepalive pings, the connect deadline, suspension and its window.

Pure bookkeeping on a monotonic clock that the caller passes in (so tests drive it);
:class:`~runner.webrtc.connection.SmallWebRTCConnection` asks :meth:`Liveness.verdict` a few times
a second and acts on the answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: With pings seen, media may flow only while the last one is younger than this.
PING_FRESH_SECS = 3.0
#: Longest pause between two looks at the clock.
MAX_STEP_SECS = 0.25


class Verdict(enum.Enum):
    """What the connection must do now."""

    CONNECT_TIMEOUT = "connect_timeout"
    """The current pc never connected: close."""
    KEEPALIVE_TIMEOUT = "keepalive_timeout"
    """Pings were seen and stopped: suspend."""
    RESUME_WINDOW_EXPIRED = "resume_window_expired"
    """Suspended for longer than the resume window: the peer is lost."""


@dataclass
class Liveness:
    """Timestamps and limits; every method takes ``now`` (``time.monotonic()``)."""

    keepalive_timeout_secs: float | None
    """Pings missing this long (once seen) suspend; None: pings are not watched."""
    resume_window_secs: float
    """A suspension lasting longer than this loses the peer; 0: never suspend, lose at once."""
    connect_timeout_secs: float
    """A pc not connected this long after it was created is given up."""
    pc_started: float = 0.0
    last_ping: float | None = None
    suspended_at: float | None = None

    @property
    def step(self) -> float:
        """How often :meth:`verdict` should be asked."""
        ka = self.keepalive_timeout_secs
        return MAX_STEP_SECS if ka is None else min(MAX_STEP_SECS, ka / 4)

    @property
    def suspended(self) -> bool:
        return self.suspended_at is not None

    @property
    def can_suspend(self) -> bool:
        """False when a lost peer must end the connection at once (no resume window)."""
        return self.resume_window_secs > 0

    def new_pc(self, now: float) -> None:
        """A new pc was created: its connect deadline starts, pings are not yet seen on it."""
        self.pc_started = now
        self.last_ping = None

    def ping(self, now: float) -> None:
        self.last_ping = now

    def pings_fresh(self, now: float) -> bool | None:
        """Whether the last ping is recent enough for media to flow; None before any ping."""
        if self.last_ping is None:
            return None
        return now - self.last_ping < PING_FRESH_SECS

    def suspend(self, now: float) -> bool:
        """Start a suspension; False if one is already running."""
        if self.suspended_at is not None:
            return False
        self.suspended_at = now
        return True

    def resume(self, now: float) -> float | None:
        """End the suspension; how long it lasted, or None if there was none."""
        if self.suspended_at is None:
            return None
        lasted, self.suspended_at = now - self.suspended_at, None
        return lasted

    def verdict(self, now: float, pc_connected: bool) -> Verdict | None:
        """What is due at ``now``. While suspended only the window counts, not a restart's connect time."""
        if self.suspended_at is not None:
            return Verdict.RESUME_WINDOW_EXPIRED if now - self.suspended_at > self.resume_window_secs else None
        if not pc_connected and now - self.pc_started > self.connect_timeout_secs:
            return Verdict.CONNECT_TIMEOUT
        ka = self.keepalive_timeout_secs
        if ka is not None and self.last_ping is not None and now - self.last_ping > ka:
            return Verdict.KEEPALIVE_TIMEOUT
        return None
