"""Framework-neutral SmallWebRTC signalling: offer/PATCH, ``/start`` sessions, ``/status``.

:class:`SignallingHandler` owns the session registry, the rate limiter, the limits and the bot
factory. Each method takes the request body (raw bytes, or a coroutine function that reads
them, so a body is only read when the route needs it) and returns a :class:`Reply`; it never
raises for anything a client did. The aiohttp app (:mod:`runner.server.app`) and the ASGI app
(:mod:`runner.server.asgi`) are thin adapters over it.

Lifetime: ``await handler.startup()`` before the first request and ``await handler.shutdown()``
at shutdown (every session gets peerLeft and is closed), or ``async with handler.running():``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from runner.limits import JsonLimitError, loads_bounded
from runner.ratelimit import TokenBucket
from runner.server.config import BotFactory, ServerConfig
from runner.server.errors import (
    ApiError,
    BadRequest,
    BodyTooLarge,
    Conflict,
    NotFound,
    ServerFull,
    TooManyRequests,
    refusal_for,
)
from runner.server.ratelimit import RateLimiter
from runner.server.sessions import Session, SessionRegistry, SessionState
from runner.webrtc.aiortc_internals import check_internals
from runner.webrtc.connection import SmallWebRTCConnection
from runner.webrtc.errors import clip_repr
from runner.webrtc.offer import check_offer

log = structlog.get_logger("runner.server")

SESSION_NOT_FOUND = "Invalid or not-yet-ready session_id"

#: A request body: its bytes, or a coroutine function that reads them (raising a refusal).
Body = bytes | Callable[[], Awaitable[bytes]]


@dataclass(frozen=True)
class Reply:
    """What to answer: a status, a JSON body (None: an empty body) and extra headers."""

    status: int
    json_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error_reply(exc: Exception, path: str) -> Reply:
    """A refusal as ``{"detail": ...}`` with its status; anything else is a logged 500."""
    refusal = refusal_for(exc)
    if refusal is None:  # a bug: logged with its traceback, never shown to the client
        log.error("request_failed", path=path, error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        return Reply(500, {"detail": "internal server error"})
    log.info("request_refused", path=path, status=refusal.code, detail=refusal.detail[:200])
    return Reply(refusal.code, {"detail": refusal.detail}, dict(refusal.headers))


class SignallingHandler:
    """The signalling logic of the built-in server, callable from any web framework."""

    def __init__(self, config: ServerConfig, bot: BotFactory) -> None:
        check_internals()  # the aiortc/aioice internals the transport uses exist, or fail now
        self.config = config
        self.bot = bot
        self.registry = SessionRegistry(config.max_sessions, config.connect_timeout_secs, config.bot_grace_secs)
        registry = self.registry
        self.rates = RateLimiter(config.limits, alive=lambda sid: registry.get(sid) is not None)
        self._closing = False

    # -- lifetime --------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Called once before serving (nothing runs in the background until the first offer)."""
        self._closing = False
        log.info("signalling_started", max_sessions=self.config.max_sessions)

    async def shutdown(self) -> None:
        """End every session: peerLeft, close its connection, cancel its bot after the grace.

        From here on new sessions are refused (503), so a request still in flight cannot leave
        a session behind that nobody will close.
        """
        self._closing = True
        log.info("server_shutdown", **self.registry.counts())
        await self.registry.close_all(self.config.shutdown_timeout_secs)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SignallingHandler]:
        """``startup()`` on entry and ``shutdown()`` on exit: for a host app's lifespan."""
        await self.startup()
        try:
            yield self
        finally:
            await self.shutdown()

    # -- routes ----------------------------------------------------------------------------------

    async def offer(self, body: Body, *, session_id: str | None = None) -> Reply:
        """``POST /api/offer`` (or ``/sessions/{session_id}/api/offer``)."""
        path = _offer_path(session_id)
        try:
            return await self._handle_offer(body, self._route_session(session_id))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return error_reply(exc, path)

    async def patch(self, body: Body, *, session_id: str | None = None) -> Reply:
        """``PATCH /api/offer`` (or ``/sessions/{session_id}/api/offer``): trickled candidates."""
        path = _offer_path(session_id)
        try:
            return await self._handle_patch(body, self._route_session(session_id))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return error_reply(exc, path)

    async def start(self, body: Body) -> Reply:
        """``POST /start``: register a session; the bot starts with its first offer."""
        try:
            return await self._start(body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return error_reply(exc, "/start")

    async def session(self, session_id: str, method: str, tail: str, body: Body) -> Reply:
        """``/sessions/{session_id}/{tail}``: offer routes for ``.../api/offer``, empty 200 otherwise."""
        path = f"/sessions/{session_id}/{tail}"
        try:
            session = self.registry.get(session_id)
            if session is None:
                raise NotFound(SESSION_NOT_FOUND)
            if tail.strip("/").endswith("api/offer"):
                if method == "POST":
                    return await self._handle_offer(body, session)
                if method == "PATCH":
                    return await self._handle_patch(body, session)
                raise ApiError(405, f"method {method} not allowed on {path}")
            return Reply(200)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return error_reply(exc, path)

    def status(self) -> Reply:
        """``GET /status``."""
        return Reply(200, {"status": "ready", "transports": ["webrtc"], **self.registry.counts()})

    # -- internals -------------------------------------------------------------------------------

    def _refuse_if_closing(self) -> None:
        if self._closing:
            raise ApiError(503, "server is shutting down")

    def _route_session(self, session_id: str | None) -> Session | None:
        if session_id is None:
            return None
        session = self.registry.get(session_id)
        if session is None:
            raise NotFound(SESSION_NOT_FOUND)
        return session

    async def _read_json(self, body: Body, *, allow_empty: bool = False) -> Any:
        """The whole body parsed with the size and depth limits."""
        limits = self.config.limits
        raw = body if isinstance(body, bytes) else await body()
        if len(raw) > limits.max_body_bytes:
            raise BodyTooLarge(f"request body larger than {limits.max_body_bytes} bytes")
        if not raw.strip():
            if allow_empty:
                return {}
            raise BadRequest("request body is empty; expected a JSON object")
        try:
            return loads_bounded(raw, limits.max_json_depth)
        except JsonLimitError as exc:
            raise BadRequest(f"request body is {exc}") from exc

    async def _handle_offer(self, raw: Body, route_session: Session | None) -> Reply:
        body = _require_object(await self._read_json(raw))
        sdp, kind, pc_id, restart = _offer_fields(body)
        check_offer(sdp, kind, self.config.limits)  # before any slot, pc or thread exists
        existing = self.registry.by_pc_id(pc_id) if pc_id else None
        if existing is not None:
            if route_session is not None and existing is not route_session:
                raise BadRequest("pc_id belongs to another session")
            _take(self.rates.for_session(existing.session_id).renegotiation, "renegotiations")
            return await self._renegotiate(existing, sdp, kind, restart)
        if pc_id:
            log.info("unknown_pc_id_new_session", unknown_pc_id=clip_repr(pc_id))
        return await self._new_connection(route_session, body, sdp, kind)

    async def _renegotiate(self, session: Session, sdp: str, kind: str, restart: bool) -> Reply:
        """A known pc_id: renegotiate, or (``restart_pc``) give a live or suspended session a new pc."""
        connection = session.connection
        if connection is None:
            raise Conflict("session is still connecting; wait for its answer")
        with structlog.contextvars.bound_contextvars(session_id=session.session_id, pc_id=connection.pc_id):
            async with session.lock:
                if not session.routable or connection.closed:
                    raise NotFound("session ended")
                was = session.state
                await connection.renegotiate(sdp, kind, restart_pc=restart)  # SignalingError -> 400
                answer = connection.get_answer()
                if answer is None or not session.routable:
                    raise NotFound("session ended")
                self.registry.add_pc_id(session, answer["pc_id"])
                log.info("renegotiated", restart_pc=restart, new_pc_id=answer["pc_id"], session_state=was.value)
                return Reply(200, answer)

    async def _new_connection(self, session: Session | None, body: dict[str, Any], sdp: str, kind: str) -> Reply:
        config, registry = self.config, self.registry
        if session is not None and session.state is not SessionState.PENDING:
            raise Conflict("session already has a connection; renegotiate with its pc_id")
        self._refuse_if_closing()
        reserved = session is None
        if reserved and not registry.reserve():
            raise ServerFull(f"server full: {config.max_sessions} sessions active", 2.0)
        connection = SmallWebRTCConnection(
            config.ice_servers,
            connection_timeout_secs=config.connect_timeout_secs,
            host_addresses=config.host_addresses,
            advertised_address=config.advertised_address,
            codecs=config.codecs,
            keepalive_timeout_secs=config.keepalive_timeout_secs,
            resume_window_secs=config.resume_window_secs,
            limits=config.limits,
        )
        lock = session.lock if session is not None else asyncio.Lock()
        async with lock:
            if session is not None:
                if session.state is not SessionState.PENDING:  # a concurrent first offer won the lock
                    await connection.close()
                    raise Conflict("session already has a connection; renegotiate with its pc_id")
                registry.begin_connect(session)
            try:
                with structlog.contextvars.bound_contextvars(pc_id=connection.pc_id):
                    await connection.initialize(sdp, kind)
            except BaseException:  # a SignalingError becomes a 400 in error_reply
                if reserved:
                    registry.release()
                elif session is not None:
                    registry.connect_failed(session)
                await connection.close()
                raise
            if session is None:
                session = registry.create(_request_data(body), reserved=True)
                registry.begin_connect(session)
            else:
                override = _request_data(body)
                if override is not None:
                    session.request_data = override
            answer = connection.get_answer()
            assert answer is not None
            with structlog.contextvars.bound_contextvars(session_id=session.session_id, pc_id=connection.pc_id):
                registry.attach(session, connection, self.bot)
                log.info("session_started")
        return Reply(200, answer)

    async def _handle_patch(self, raw: Body, route_session: Session | None) -> Reply:
        body = _require_object(await self._read_json(raw))
        pc_id, candidates = body.get("pc_id"), body.get("candidates")
        if not isinstance(pc_id, str) or not pc_id:
            raise BadRequest("'pc_id' is required and must be a string")
        if not isinstance(candidates, list):
            raise BadRequest("'candidates' is required and must be a list")
        session = self.registry.by_pc_id(pc_id)
        if (
            session is None
            or session.connection is None
            or (route_session is not None and session is not route_session)
        ):
            raise NotFound("Peer connection not found")
        _take(self.rates.for_session(session.session_id).patch, "PATCH requests")
        with structlog.contextvars.bound_contextvars(session_id=session.session_id, pc_id=session.connection.pc_id):
            # InvalidCandidateError, CandidateLimitError -> 400 in error_reply
            await session.connection.add_ice_candidates(candidates)
        return Reply(200, {"status": "success"})

    async def _start(self, raw: Body) -> Reply:
        config, registry = self.config, self.registry
        body = _require_object(await self._read_json(raw, allow_empty=True))
        transport = body.get("transport", "webrtc")
        if transport != "webrtc":
            raise BadRequest(f"unsupported transport {clip_repr(transport)}; this server speaks 'webrtc' only")
        if body.get("enableDefaultIceServers") and not config.ice_servers:
            log.info("default_ice_servers_ignored", reason="no public STUN is ever configured implicitly")
        self._refuse_if_closing()
        if not registry.reserve():
            raise ServerFull(f"server full: {config.max_sessions} sessions active", 2.0)
        session = registry.create(body.get("body"), reserved=True)
        log.info("session_registered", session_id=session.session_id)
        ice = [s.to_dict() for s in config.ice_servers]
        return Reply(200, {"sessionId": session.session_id, "iceConfig": {"iceServers": ice}})


def _offer_path(session_id: str | None) -> str:
    return "/api/offer" if session_id is None else f"/sessions/{session_id}/api/offer"


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _offer_fields(body: dict[str, Any]) -> tuple[str, str, str | None, bool]:
    sdp, kind, pc_id = body.get("sdp"), body.get("type"), body.get("pc_id")
    restart = body.get("restart_pc", False)
    if not isinstance(sdp, str) or not sdp.strip():
        raise BadRequest("'sdp' is required and must be a non-empty string")
    if kind != "offer":
        raise BadRequest(f"'type' must be \"offer\", got {clip_repr(kind)}")
    if pc_id is not None and not isinstance(pc_id, str):
        raise BadRequest("'pc_id' must be a string or null")
    if restart is None:
        restart = False
    if not isinstance(restart, bool):
        raise BadRequest("'restart_pc' must be a boolean")
    return sdp, kind, pc_id or None, restart


def _take(bucket: TokenBucket, what: str) -> None:
    """Spend a token or refuse with 429; a refusal leaves the session exactly as it was."""
    wait = bucket.take()
    if wait is not None:
        raise TooManyRequests(f"too many {what} for this session; retry in {wait:.1f} s", wait)


def _request_data(body: dict[str, Any]) -> Any:
    if "request_data" in body and body["request_data"] is not None:
        return body["request_data"]
    return body.get("requestData")


__all__ = ["Body", "Reply", "SignallingHandler", "error_reply"]
