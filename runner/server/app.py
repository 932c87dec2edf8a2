"""The aiohttp signalling app: SmallWebRTC offer/PATCH routes, ``/start`` sessions, ``/status``.

Errors are JSON ``{"detail": "..."}`` with a 4xx for anything the client got wrong; a failed
offer never leaves a session or a peer connection behind.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

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

CONFIG_KEY = web.AppKey("config", ServerConfig)
REGISTRY_KEY = web.AppKey("registry", SessionRegistry)
BOT_KEY = web.AppKey("bot", object)
RATES_KEY = web.AppKey("rates", RateLimiter)

ALLOWED_METHODS = "GET, POST, PATCH, OPTIONS"
ALLOWED_HEADERS = "Content-Type, Authorization"
SESSION_NOT_FOUND = "Invalid or not-yet-ready session_id"


#: What reading a body raises when the client sent it wrong (or went away while sending it).
_CLIENT_PAYLOAD_ERRORS = (
    aiohttp.ClientError,
    ConnectionError,
    ValueError,
    HttpProcessingError,
    web.RequestPayloadError,
)

__all__ = ["ApiError", "app_runner", "create_app", "serve"]  # ApiError: kept importable for handlers


def _json_error(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"detail": detail}, status=status, headers=headers)


# -- middlewares ---------------------------------------------------------------------------------


def _cors_headers(config: ServerConfig, request: web.Request) -> dict[str, str]:
    origin = request.headers.get("Origin")
    if origin is None or not config.cors_origins:
        return {}
    if "*" in config.cors_origins:
        return {"Access-Control-Allow-Origin": "*"}
    if origin in config.cors_origins:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {}


@web.middleware
async def _cors_and_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    config = request.app[CONFIG_KEY]
    cors = _cors_headers(config, request)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        preflight = {**cors, "Access-Control-Allow-Methods": ALLOWED_METHODS, "Access-Control-Max-Age": "600"}
        if cors:
            preflight["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        return web.Response(status=204, headers=preflight)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _json_error(exc.status, exc.reason)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        refusal = refusal_for(exc)
        if refusal is None:  # a bug: logged with its traceback, never shown to the client
            log.exception("request_failed", path=request.path, error=f"{type(exc).__name__}: {exc}")
            response = _json_error(500, "internal server error")
        else:
            log.info("request_refused", path=request.path, status=refusal.code, detail=refusal.detail[:200])
            response = _json_error(refusal.code, refusal.detail, refusal.headers)
    response.headers.update(cors)
    return response


# -- request parsing -----------------------------------------------------------------------------


async def _read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    """The whole body (however many segments it came in), parsed with the depth limit."""
    limits = request.app[CONFIG_KEY].limits
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        raise BodyTooLarge(f"request body larger than {limits.max_body_bytes} bytes")
    try:
        raw = await request.read()  # reads to the end; aiohttp's client_max_size bounds it
    except web.HTTPRequestEntityTooLarge as exc:
        raise BodyTooLarge(f"request body larger than {limits.max_body_bytes} bytes") from exc
    except _CLIENT_PAYLOAD_ERRORS as exc:  # a body cut short, badly chunked or badly encoded
        raise BadRequest(f"could not read request body: {type(exc).__name__}: {exc}") from exc
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        return loads_bounded(raw, limits.max_json_depth)
    except JsonLimitError as exc:
        raise BadRequest(f"request body is {exc}") from exc


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


# -- handlers ------------------------------------------------------------------------------------


async def _handle_offer(request: web.Request, route_session: Session | None) -> web.Response:
    body = _require_object(await _read_json(request))
    sdp, kind, pc_id, restart = _offer_fields(body)
    check_offer(sdp, kind, request.app[CONFIG_KEY].limits)  # before any slot, pc or thread exists
    registry = request.app[REGISTRY_KEY]
    existing = registry.by_pc_id(pc_id) if pc_id else None
    if existing is not None:
        if route_session is not None and existing is not route_session:
            raise BadRequest("pc_id belongs to another session")
        _take(request.app[RATES_KEY].for_session(existing.session_id).renegotiation, "renegotiations")
        return await _renegotiate(registry, existing, sdp, kind, restart)
    if pc_id:
        log.info("unknown_pc_id_new_session", unknown_pc_id=clip_repr(pc_id))
    return await _new_connection(request, route_session, body, sdp, kind)


async def _renegotiate(registry: SessionRegistry, session: Session, sdp: str, kind: str, restart: bool) -> web.Response:
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
            registry.add_pc_id(session, answer["pc_id"])
            log.info("renegotiated", restart_pc=restart, new_pc_id=answer["pc_id"], session_state=was.value)
            return web.json_response(answer)


async def _new_connection(
    request: web.Request, session: Session | None, body: dict[str, Any], sdp: str, kind: str
) -> web.Response:
    config, registry = request.app[CONFIG_KEY], request.app[REGISTRY_KEY]
    if session is not None and session.state is not SessionState.PENDING:
        raise Conflict("session already has a connection; renegotiate with its pc_id")
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
        except BaseException:  # a SignalingError becomes a 400 in the middleware
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
            registry.attach(session, connection, request.app[BOT_KEY])  # type: ignore[arg-type]
            log.info("session_started")
    return web.json_response(answer)


async def _handle_patch(request: web.Request, route_session: Session | None) -> web.Response:
    body = _require_object(await _read_json(request))
    pc_id, candidates = body.get("pc_id"), body.get("candidates")
    if not isinstance(pc_id, str) or not pc_id:
        raise BadRequest("'pc_id' is required and must be a string")
    if not isinstance(candidates, list):
        raise BadRequest("'candidates' is required and must be a list")
    session = request.app[REGISTRY_KEY].by_pc_id(pc_id)
    if session is None or session.connection is None or (route_session is not None and session is not route_session):
        raise NotFound("Peer connection not found")
    _take(request.app[RATES_KEY].for_session(session.session_id).patch, "PATCH requests")
    with structlog.contextvars.bound_contextvars(session_id=session.session_id, pc_id=session.connection.pc_id):
        # InvalidCandidateError, CandidateLimitError -> 400 in the middleware
        await session.connection.add_ice_candidates(candidates)
    return web.json_response({"status": "success"})


async def offer(request: web.Request) -> web.Response:
    """``POST /api/offer``."""
    return await _handle_offer(request, None)


async def patch_offer(request: web.Request) -> web.Response:
    """``PATCH /api/offer``."""
    return await _handle_patch(request, None)


async def start(request: web.Request) -> web.Response:
    """``POST /start``: register a session; the bot starts with its first offer."""
    config, registry = request.app[CONFIG_KEY], request.app[REGISTRY_KEY]
    body = _require_object(await _read_json(request, allow_empty=True))
    transport = body.get("transport", "webrtc")
    if transport != "webrtc":
        raise BadRequest(f"unsupported transport {clip_repr(transport)}; this server speaks 'webrtc' only")
    if body.get("enableDefaultIceServers") and not config.ice_servers:
        log.info("default_ice_servers_ignored", reason="no public STUN is ever configured implicitly")
    if not registry.reserve():
        raise ServerFull(f"server full: {config.max_sessions} sessions active", 2.0)
    session = registry.create(body.get("body"), reserved=True)
    log.info("session_registered", session_id=session.session_id)
    ice = [s.to_dict() for s in config.ice_servers]
    return web.json_response({"sessionId": session.session_id, "iceConfig": {"iceServers": ice}})


async def session_proxy(request: web.Request) -> web.Response:
    """``/sessions/{id}/{path}``: offer routes for ``.../api/offer``, empty 200 otherwise."""
    session = request.app[REGISTRY_KEY].get(request.match_info["session_id"])
    if session is None:
        raise NotFound(SESSION_NOT_FOUND)
    path = request.match_info["tail"].strip("/")
    if path.endswith("api/offer"):
        if request.method == "POST":
            return await _handle_offer(request, session)
        if request.method == "PATCH":
            return await _handle_patch(request, session)
        raise ApiError(405, f"method {request.method} not allowed on {request.path}")
    return web.Response(status=200)


async def status(request: web.Request) -> web.Response:
    """``GET /status``."""
    return web.json_response({"status": "ready", "transports": ["webrtc"], **request.app[REGISTRY_KEY].counts()})


async def _unrouted(request: web.Request) -> web.Response:
    """404 for unknown paths, 405 for a known path with another method."""
    allowed = {
        "/api/offer": "POST, PATCH, OPTIONS",
        "/start": "POST, OPTIONS",
        "/status": "GET, OPTIONS",
    }.get(request.path)
    if allowed is None:
        raise NotFound("not found")
    raise ApiError(405, f"method {clip_repr(request.method)} not allowed on {request.path}", {"Allow": allowed})


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` as aiohttp handles it, but any other value is a 417 with a reason.

    aiohttp's default handler puts the header's text into its error body, and a header with
    non-UTF-8 bytes then fails to encode: a 500 before any middleware runs.
    """
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version != aiohttp.HttpVersion11:
        return None
    if expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the 100 is not the response: the real one may follow
        return None
    return _json_error(417, f"unsupported Expect header {clip_repr(expect)}")


def _static_handler(root: Path) -> Any:
    base = root.resolve()

    async def serve_file(request: web.Request) -> web.FileResponse:
        rel = request.match_info.get("path", "") or "index.html"
        target = (base / rel).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(base) or not target.is_file():
            raise NotFound("not found")
        return web.FileResponse(target)

    return serve_file


# -- app -----------------------------------------------------------------------------------------


def create_app(config: ServerConfig, bot: BotFactory) -> web.Application:
    """Build the signalling app; shutting it down ends every session (peerLeft, close, cancel)."""
    check_internals()  # the aiortc/aioice internals the transport uses exist, or fail before serving
    app = web.Application(middlewares=[_cors_and_errors], client_max_size=config.limits.max_body_bytes)
    app[CONFIG_KEY] = config
    app[REGISTRY_KEY] = SessionRegistry(config.max_sessions, config.connect_timeout_secs, config.bot_grace_secs)
    app[BOT_KEY] = bot
    registry = app[REGISTRY_KEY]
    app[RATES_KEY] = RateLimiter(config.limits, alive=lambda sid: registry.get(sid) is not None)
    routes: list[tuple[str, str, Any]] = [
        ("POST", "/api/offer", offer),
        ("PATCH", "/api/offer", patch_offer),
        ("POST", "/start", start),
        ("GET", "/status", status),
        ("*", "/sessions/{session_id}/{tail:.*}", session_proxy),
    ]
    if config.static_dir is not None:
        routes.append(("GET", "/{path:.*}", _static_handler(config.static_dir)))
    # last: every request matches one of our routes, so aiohttp's own 404/405 routes (and their
    # Expect handling) are never reached
    routes.append(("*", "/{unrouted:.*}", _unrouted))
    for method, path, handler in routes:
        app.router.add_route(method, path, handler, expect_handler=_expect)

    async def _shutdown(app: web.Application) -> None:
        log.info("server_shutdown", **app[REGISTRY_KEY].counts())
        await app[REGISTRY_KEY].close_all(config.shutdown_timeout_secs)

    app.on_shutdown.append(_shutdown)
    return app


class _FramingErrorLogger(logging.LoggerAdapter):
    """aiohttp's server logger, minus the traceback for a client's malformed HTTP.

    aiohttp answers a bad request line, header or chunk with 400 itself, and drains the unread
    body of a request we answered early; either way it logs the parser's exception with a
    traceback. That is the client's fault, not ours, so it becomes one info line.
    """

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError | web.RequestPayloadError):
            log.info("bad_http_request", error=f"{type(exc_info).__name__}: {str(exc_info)[:200]}")
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


def app_runner(app: web.Application) -> web.AppRunner:
    """An ``AppRunner`` for :func:`create_app`'s app (no signal handling, quiet about bad framing)."""
    return web.AppRunner(app, handle_signals=False, logger=_FramingErrorLogger(logging.getLogger("aiohttp.server")))


async def serve(config: ServerConfig, bot: BotFactory, *, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set), then end every session and return."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            pass
    runner = app_runner(create_app(config, bot))
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        log.info("server_listening", host=config.host, port=config.port)
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await runner.cleanup()
