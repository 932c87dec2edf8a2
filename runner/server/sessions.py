"""Session registry: one bot per session, looked up by session id or by any of its ``pc_id``s."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog

from runner.server.config import BotFactory, SessionInfo
from runner.webrtc.connection import SmallWebRTCConnection

log = structlog.get_logger("runner.server.sessions")


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
    ended: bool = False

    @property
    def live(self) -> bool:
        """True once a connection is attached and not closed."""
        return self.connection is not None and not self.connection.closed


class SessionRegistry:
    """Tracks sessions and their pc ids; enforces ``max_sessions``; cleans up on close."""

    def __init__(self, max_sessions: int, pending_ttl_secs: float, bot_grace_secs: float) -> None:
        self.max_sessions = max_sessions
        self.pending_ttl_secs = pending_ttl_secs
        self.bot_grace_secs = bot_grace_secs
        self._sessions: dict[str, Session] = {}
        self._by_pc: dict[str, Session] = {}
        self._reserved = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lookups --------------------------------------------------------------------------------

    def get(self, session_id: str) -> Session | None:
        """The session ``session_id`` if it exists and has not ended."""
        session = self._sessions.get(session_id)
        return session if session is not None and not session.ended else None

    def by_pc_id(self, pc_id: str) -> Session | None:
        """The session that owns (or owned, before a restart) ``pc_id``."""
        session = self._by_pc.get(pc_id)
        return session if session is not None and not session.ended else None

    def counts(self) -> dict[str, int]:
        """Numbers for ``/status``."""
        self._expire_pending()
        live = sum(1 for s in self._sessions.values() if s.live)
        return {"sessions": len(self._sessions), "connected": live, "max_sessions": self.max_sessions}

    # -- capacity -------------------------------------------------------------------------------

    def reserve(self) -> bool:
        """Take a slot for a session about to be created; False when full."""
        self._expire_pending()
        if len(self._sessions) + self._reserved >= self.max_sessions:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        """Give back a slot taken by :meth:`reserve` that was not used."""
        self._reserved = max(0, self._reserved - 1)

    def _expire_pending(self) -> None:
        now = time.monotonic()
        for session in list(self._sessions.values()):
            stale = now - session.created > self.pending_ttl_secs
            if session.connection is None and not session.lock.locked() and stale:
                log.info("pending_session_expired", session_id=session.session_id)
                self._drop(session)

    # -- lifecycle ------------------------------------------------------------------------------

    def create(self, request_data: Any = None, *, reserved: bool = False) -> Session:
        """Register a new session (consuming a reservation if ``reserved``)."""
        if reserved:
            self.release()
        session = Session(session_id=str(uuid.uuid4()), request_data=request_data)
        self._sessions[session.session_id] = session
        return session

    def add_pc_id(self, session: Session, pc_id: str) -> None:
        """Route ``pc_id`` to ``session`` until the session ends."""
        session.pc_ids.add(pc_id)
        self._by_pc[pc_id] = session

    def attach(self, session: Session, connection: SmallWebRTCConnection, bot: BotFactory) -> None:
        """Bind the session's connection and start its bot (once per session)."""
        session.connection = connection
        self.add_pc_id(session, connection.pc_id)

        @connection.event_handler("closed")
        async def _on_closed(conn: SmallWebRTCConnection) -> None:
            self._track(asyncio.get_running_loop().create_task(self.end(session)))

        info = SessionInfo(session_id=session.session_id, pc_id=connection.pc_id, request_data=session.request_data)
        session.bot_task = asyncio.get_running_loop().create_task(self._run_bot(session, bot, info))
        self._track(session.bot_task)

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
                    with contextlib.suppress(Exception):
                        await connection.disconnect()
                self._drop(session)

    async def end(self, session: Session) -> None:
        """The connection closed: leave the registry; cancel the bot after a short grace period."""
        self._drop(session)
        task = session.bot_task
        if task is None or task.done() or task is asyncio.current_task():
            return
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(task), self.bot_grace_secs)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _drop(self, session: Session) -> None:
        if session.ended:
            return
        session.ended = True
        self._sessions.pop(session.session_id, None)
        for pc_id in session.pc_ids:
            if self._by_pc.get(pc_id) is session:
                del self._by_pc[pc_id]
        log.info("session_ended", session_id=session.session_id)

    async def close_all(self, wait_secs: float) -> None:
        """Server shutdown: peerLeft + close every connection, cancel every bot."""
        sessions = list(self._sessions.values())
        closing = [s.connection.disconnect() for s in sessions if s.connection is not None and not s.connection.closed]
        if closing:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), wait_secs)
        for session in sessions:
            self._drop(session)
        tasks = [s.bot_task for s in sessions if s.bot_task is not None and not s.bot_task.done()]
        tasks += [t for t in self._tasks if not t.done() and t not in tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=wait_secs)
