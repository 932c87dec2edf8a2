"""Session registry: one bot per session, looked up by session id or by any of its ``pc_id``s.

A session's life is a :class:`SessionState`, written only by :meth:`Session._set_state`, which
logs ``old -> new`` and refuses transitions the machine does not have::

    PENDING --offer--> CONNECTING --answered--> LIVE <--suspend/resume--> SUSPENDED
       |                   |  (failed offer: back to PENDING)  |                |
       +--expired----------+-------------> ENDING <-----------+----------------+
                                             | bot finished
                                             v
                                           ENDED

``ENDING`` sessions (connection closed, bot still finishing) are no longer routable but still
count toward ``max_sessions``: a slot is free only once its bot has finished.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog

from runner.server.config import BotFactory, SessionInfo
from runner.webrtc.connection import SmallWebRTCConnection

log = structlog.get_logger("runner.server.sessions")


class SessionState(enum.Enum):
    """Where a session is in its life (see the module docstring)."""

    PENDING = "pending"
    CONNECTING = "connecting"
    LIVE = "live"
    SUSPENDED = "suspended"
    ENDING = "ending"
    ENDED = "ended"


_TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.PENDING: frozenset({SessionState.CONNECTING, SessionState.ENDED}),
    SessionState.CONNECTING: frozenset({SessionState.PENDING, SessionState.LIVE, SessionState.ENDED}),
    SessionState.LIVE: frozenset({SessionState.SUSPENDED, SessionState.ENDING, SessionState.ENDED}),
    SessionState.SUSPENDED: frozenset({SessionState.LIVE, SessionState.ENDING, SessionState.ENDED}),
    SessionState.ENDING: frozenset({SessionState.ENDED}),
    SessionState.ENDED: frozenset(),
}

#: States in which a session answers offers and PATCHes.
ROUTABLE = frozenset({SessionState.PENDING, SessionState.CONNECTING, SessionState.LIVE, SessionState.SUSPENDED})


class SessionStateError(RuntimeError):
    """A transition the session state machine does not allow, or an unmatched slot release."""


@dataclass
class Session:
    """A client session: maybe pre-registered by ``/start``, live once its first offer is answered."""

    session_id: str
    request_data: Any = None
    connection: SmallWebRTCConnection | None = None
    pc_ids: set[str] = field(default_factory=set)
    bot_task: asyncio.Task[None] | None = None
    created: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serialises offers on this session (not a state: see :attr:`state`)."""
    state: SessionState = SessionState.PENDING

    def _set_state(self, new: SessionState, reason: str) -> None:
        old = self.state
        if new is old:
            return
        if new not in _TRANSITIONS[old]:
            log.error("session_state_illegal", session_id=self.session_id, old=old.value, new=new.value, reason=reason)
            raise SessionStateError(f"session {self.session_id}: {old.value} -> {new.value} is not allowed")
        self.state = new
        log.info("session_state", session_id=self.session_id, old=old.value, new=new.value, reason=reason)

    @property
    def routable(self) -> bool:
        """True while offers and PATCHes reach this session."""
        return self.state in ROUTABLE

    @property
    def live(self) -> bool:
        """True while a connection is attached and the client is there."""
        return self.state is SessionState.LIVE


class SessionRegistry:
    """Tracks sessions and their pc ids; enforces ``max_sessions``; cleans up on close."""

    def __init__(self, max_sessions: int, pending_ttl_secs: float, bot_grace_secs: float) -> None:
        self.max_sessions = max_sessions
        self.pending_ttl_secs = pending_ttl_secs
        self.bot_grace_secs = bot_grace_secs
        self._sessions: dict[str, Session] = {}  # every session not ENDED (ENDING ones hold their slot)
        self._by_pc: dict[str, Session] = {}
        self._reserved = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lookups --------------------------------------------------------------------------------

    def get(self, session_id: str) -> Session | None:
        """The session ``session_id`` if it still takes offers."""
        session = self._sessions.get(session_id)
        return session if session is not None and session.routable else None

    def by_pc_id(self, pc_id: str) -> Session | None:
        """The session that owns (or owned, before a restart) ``pc_id``, if it still takes offers."""
        session = self._by_pc.get(pc_id)
        return session if session is not None and session.routable else None

    def counts(self) -> dict[str, int]:
        """Numbers for ``/status``: every session holding a slot, and how many are live / suspended."""
        self._expire_pending()
        states = [s.state for s in self._sessions.values()]
        return {
            "sessions": len(states),
            "connected": states.count(SessionState.LIVE),
            "suspended": states.count(SessionState.SUSPENDED),
            "max_sessions": self.max_sessions,
        }

    def sessions(self) -> list[Session]:
        """Every session holding a slot (for inspection)."""
        return list(self._sessions.values())

    # -- capacity -------------------------------------------------------------------------------

    def reserve(self) -> bool:
        """Take a slot for a session about to be created; False when full."""
        self._expire_pending()
        if len(self._sessions) + self._reserved >= self.max_sessions:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        """Give back a slot taken by :meth:`reserve`; releasing one never taken is an error."""
        if self._reserved <= 0:
            log.error("slot_release_unmatched", reserved=self._reserved)
            raise SessionStateError("release() without a matching reserve()")
        self._reserved -= 1

    def _expire_pending(self) -> None:
        now = time.monotonic()
        for session in list(self._sessions.values()):
            if session.state is SessionState.PENDING and now - session.created > self.pending_ttl_secs:
                self._finish(session, "pending_expired")

    # -- lifecycle ------------------------------------------------------------------------------

    def create(self, request_data: Any = None, *, reserved: bool = False) -> Session:
        """Register a new ``PENDING`` session (consuming a reservation if ``reserved``)."""
        if reserved:
            self.release()
        session = Session(session_id=str(uuid.uuid4()), request_data=request_data)
        self._sessions[session.session_id] = session
        log.info("session_state", session_id=session.session_id, old=None, new=session.state.value, reason="created")
        return session

    def begin_connect(self, session: Session) -> None:
        """The session's first offer is being answered (``PENDING -> CONNECTING``)."""
        session._set_state(SessionState.CONNECTING, "offer")

    def connect_failed(self, session: Session) -> None:
        """The first offer failed; the session may try again (``CONNECTING -> PENDING``)."""
        session.created = time.monotonic()  # a fresh TTL for the retry
        session._set_state(SessionState.PENDING, "offer_failed")

    def add_pc_id(self, session: Session, pc_id: str) -> None:
        """Route ``pc_id`` to ``session`` until the session ends."""
        session.pc_ids.add(pc_id)
        self._by_pc[pc_id] = session

    def attach(self, session: Session, connection: SmallWebRTCConnection, bot: BotFactory) -> None:
        """Bind the session's connection and start its bot (once per session): ``CONNECTING -> LIVE``."""
        session.connection = connection
        self.add_pc_id(session, connection.pc_id)
        session._set_state(SessionState.LIVE, "answered")

        @connection.event_handler("suspended")
        async def _on_suspended(conn: SmallWebRTCConnection, reason: str) -> None:
            self.suspend(session, reason)

        @connection.event_handler("resumed")
        async def _on_resumed(conn: SmallWebRTCConnection, how: str) -> None:
            self.resume(session, how)

        @connection.event_handler("closed")
        async def _on_closed(conn: SmallWebRTCConnection) -> None:
            self._track(asyncio.get_running_loop().create_task(self.end(session)))

        info = SessionInfo(session_id=session.session_id, pc_id=connection.pc_id, request_data=session.request_data)
        session.bot_task = asyncio.get_running_loop().create_task(self._run_bot(session, bot, info))
        self._track(session.bot_task)

    def suspend(self, session: Session, reason: str) -> None:
        """The client vanished but may restart: ``LIVE -> SUSPENDED``."""
        if session.state is SessionState.LIVE:
            session._set_state(SessionState.SUSPENDED, reason)

    def resume(self, session: Session, how: str) -> None:
        """The client came back: ``SUSPENDED -> LIVE``."""
        if session.state is SessionState.SUSPENDED:
            session._set_state(SessionState.LIVE, how)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_bot(self, session: Session, bot: BotFactory, info: SessionInfo) -> None:
        connection = session.connection
        assert connection is not None
        with structlog.contextvars.bound_contextvars(session_id=session.session_id, pc_id=info.pc_id):
            try:
                await bot(connection, info)
                log.info("bot_finished")
            except asyncio.CancelledError:
                log.info("bot_cancelled")
                raise
            except Exception as exc:  # one bot's crash must not touch the server
                log.exception("bot_failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                if not connection.closed:
                    try:
                        await connection.disconnect()
                    except Exception as exc:  # the slot must be freed whatever the goodbye did
                        log.error("bot_disconnect_failed", error=f"{type(exc).__name__}: {exc}")
                self._finish(session, "bot_finished")

    async def end(self, session: Session) -> None:
        """The connection closed: stop routing the session; cancel the bot after a short grace period."""
        if session.state in (SessionState.LIVE, SessionState.SUSPENDED):
            session._set_state(SessionState.ENDING, "connection_closed")
        self._unroute(session)
        task = session.bot_task
        if task is None or task.done() or task is asyncio.current_task():
            return
        done, _ = await asyncio.wait({task}, timeout=self.bot_grace_secs)
        if not done:
            log.info("bot_grace_expired", session_id=session.session_id, grace_secs=self.bot_grace_secs)
            task.cancel()
            _, stuck = await asyncio.wait({task}, timeout=self.bot_grace_secs)
            if stuck:
                log.error("bot_ignores_cancel", session_id=session.session_id)

    def _unroute(self, session: Session) -> None:
        for pc_id in session.pc_ids:
            if self._by_pc.get(pc_id) is session:
                del self._by_pc[pc_id]

    def _finish(self, session: Session, reason: str) -> None:
        """Free the session's slot: it is ``ENDED``."""
        if session.state is SessionState.ENDED:
            return
        session._set_state(SessionState.ENDED, reason)
        self._sessions.pop(session.session_id, None)
        self._unroute(session)
        log.info("session_ended", session_id=session.session_id, reason=reason)

    async def close_all(self, wait_secs: float) -> None:
        """Server shutdown: peerLeft + close every connection, cancel every bot."""
        sessions = list(self._sessions.values())
        connections = [s.connection for s in sessions if s.connection is not None and not s.connection.closed]
        closing = [asyncio.ensure_future(c.disconnect()) for c in connections]
        if closing:
            done, pending = await asyncio.wait(closing, timeout=wait_secs)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    log.error("shutdown_disconnect_failed", error=f"{type(exc).__name__}: {exc}")
        tasks = [s.bot_task for s in sessions if s.bot_task is not None and not s.bot_task.done()]
        tasks += [t for t in self._tasks if not t.done() and t not in tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=wait_secs)
        for session in sessions:
            self._finish(session, "server_shutdown")
