"""Reconnection policy of the client (PROTOCOL.md §6.3) and its attempt bookkeeping.

* ICE ``failed`` (or an unexpected close of the current peer connection, which is how aiortc
  reports the server going away) -> restart at once with a fresh peer connection
  (``restart_pc: true`` and the old ``pc_id``).
* ICE ``disconnected`` still after ``disconnected_grace_secs`` -> the same restart.
* A server ``renegotiate`` -> a new offer on the same peer connection (``restart_pc: false``).
* A 4xx answer ends everything at once; a 5xx or network error retries after ``retry_delay_secs``.
* After ``max_attempts`` failed attempts: graceful disconnect, state ``error``.

Unlike the JS client, the counter resets when the current peer connection reaches
``connected`` rather than when its signalling returns to ``stable``: aiortc is ``stable`` right
after every answer, which would let a server that answers but never connects loop forever.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReconnectPolicy:
    """Tunables of the reconnection logic (defaults are the JS client's)."""

    max_attempts: int = 3
    disconnected_grace_secs: float = 5.0
    retry_delay_secs: float = 2.0


class ReconnectTracker:
    """Counts attempts and knows when to give up."""

    def __init__(self, policy: ReconnectPolicy) -> None:
        self.policy = policy
        self.attempts = 0
        self.in_progress = False
        #: Successful reconnections (restart or renegotiation) over the client's life.
        self.succeeded = 0

    def exhausted(self) -> bool:
        """True when no attempt is left."""
        return self.attempts >= self.policy.max_attempts

    def begin(self) -> int:
        """Start an attempt; returns its number (1-based)."""
        self.attempts += 1
        self.in_progress = True
        return self.attempts

    def end(self) -> None:
        """The attempt finished (either way)."""
        self.in_progress = False

    def reset(self) -> None:
        """The current peer connection is healthy again."""
        self.attempts = 0
