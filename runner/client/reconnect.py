"""Reconnection policy of the client (PROTOCOL.md §6.3) and its attempt bookkeeping.

* ICE ``failed`` (or an unexpected close of the current peer connection, which is how aiortc
  reports the server going away) -> restart at once with a fresh peer connection
  (``restart_pc: true`` and the old ``pc_id``).
* ICE ``disconnected`` still after ``disconnected_grace_secs`` -> the same restart. aiortc has no
  ``disconnected`` state, so the client derives it from inbound silence (see :class:`InboundWatch`).
* A server ``renegotiate`` -> a new offer on the same peer connection (``restart_pc: false``).
* A 4xx answer ends everything at once; a 5xx or network error retries after ``retry_delay_secs``.
* After ``max_attempts`` failed attempts: graceful disconnect, state ``error``.

Unlike the JS client, the counter resets when the current peer connection reaches
``connected`` rather than when its signalling returns to ``stable``: aiortc is ``stable`` right
after every answer, which would let a server that answers but never connects loop forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import RTCPeerConnection


@dataclass
class ReconnectPolicy:
    """Tunables of the reconnection logic (defaults are the JS client's)."""

    max_attempts: int = 3
    disconnected_grace_secs: float = 5.0
    retry_delay_secs: float = 2.0
    inbound_silence_secs: float = 3.0
    """No packet at all from the server for this long counts as ICE ``disconnected``."""
    inbound_check_secs: float = 0.5
    """How often the inbound packet counter is read."""


class InboundWatch:
    """Stands in for the browser's ICE ``disconnected`` state, which aiortc does not have.

    aiortc's ICE goes from ``completed`` straight to ``failed``, and only when consent freshness
    has failed six times (about 30 s); a browser calls a pair ``disconnected`` after a few seconds
    without answers. What a client can observe through aiortc's public API is the DTLS transport's
    ``packetsReceived`` in ``getStats()``: it counts every packet the server sends on the pc (RTP,
    RTCP, SCTP). A healthy aiortc server sends an RTCP sender report on each of its sending
    transceivers (audio and camera are sendrecv) every 0.5-1.5 s even with nothing to play, and
    keeps doing so while it has suspended the session, so ``silence_secs`` with no packet at all
    means the path is gone, not that the bot is quiet. The counter is used rather than media
    because a bot may send no audio at all.
    """

    def __init__(self, silence_secs: float) -> None:
        self.silence_secs = silence_secs
        self._packets = -1
        self._changed_at: float | None = None

    def observe(self, packets: int, now: float) -> bool:
        """Record the counter read at ``now``; True while the server has been silent too long."""
        if packets != self._packets or self._changed_at is None:
            self._packets = packets
            self._changed_at = now
            return False
        return now - self._changed_at >= self.silence_secs


async def packets_received(pc: RTCPeerConnection) -> int:
    """Packets the pc's transport(s) received so far (from ``getStats()``)."""
    report = await pc.getStats()
    counts = [int(getattr(s, "packetsReceived", 0) or 0) for s in report.values() if s.type == "transport"]
    return max(counts, default=0)


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
