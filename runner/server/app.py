"""The aiohttp signalling app: SmallWebRTC offer/PATCH routes, ``/start`` sessions, ``/status``.

Errors are JSON ``{"detail": "..."}`` with a 4xx for anything the client got wrong; a failed
offer never leaves a session or a peer connection behind.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from runner.server.config import BotFactory, ServerConfig
from runner.server.sessions import Session, SessionRegistry, SessionState
from runner.webrtc.connection import SignalingError, SmallWebRTCConnection
from runner.webrtc.ice import InvalidCandidateError

log = structlog.get_logger("runner.server")

CONFIG_KEY = web.AppKey("config", ServerConfig)
REGISTRY_KEY = web.AppKey("registry", SessionRegistry)
BOT_KEY = web.AppKey("bot", object)

ALLOWED_METHODS = "GET, POST, PATCH, OPTIONS"
ALLOWED_HEADERS = "Content-Type, Authorization"
SESSION_NOT_FOUND = "Invalid or not-yet-ready session_id"


class ApiError(Exception):
    """Answered as ``{"detail": message}`` with ``status``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


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
    except ApiError as exc:
        response = _json_error(exc.status, exc.detail, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _json_error(exc.status, exc.reason)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # never leak a traceback to a client
        log.exception("request_failed", path=request.path, error=f"{type(exc).__name__}: {exc}")
        response = _json_error(500, "internal server error")
    response.headers.update(cors)
    return response


# -- request parsing -----------------------------------------------------------------------------


async def _read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    limit = request.app[CONFIG_KEY].limits.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    try:
        raw = await request.content.read(limit + 1)
    except Exception as exc:  # aiohttp payload errors
        raise ApiError(400, f"could not read request body: {exc}") from None
    if len(raw) > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def _offer_fields(body: dict[str, Any]) -> tuple[str, str, str | None, bool]:
    sdp, kind, pc_id = body.get("sdp"), body.get("type"), body.get("pc_id")
    restart = body.get("restart_pc", False)
    if not isinstance(sdp, str) or not sdp.strip():
        raise ApiError(400, "'sdp' is required and must be a non-empty string")
    if kind != "offer":
        raise ApiError(400, f"'type' must be \"offer\", got {kind!r}")
    if pc_id is not None and not isinstance(pc_id, str):
        raise ApiError(400, "'pc_id' must be a string or null")
    if restart is None:
        restart = False
    if not isinstance(restart, bool):
        raise ApiError(400, "'restart_pc' must be a boolean")
    return sdp, kind, pc_id or None, restart


def _request_data(body: dict[str, Any]) -> Any:
    if "request_data" in body and body["request_data"] is not None:
        return body["request_data"]
    return body.get("requestData")


# -- handlers ------------------------------------------------------------------------------------


async def _handle_offer(request: web.Request, route_session: Session | None) -> web.Response:
    body = _require_object(await _read_json(request))
    sdp, kind, pc_id, restart = _offer_fields(body)
    registry = request.app[REGISTRY_KEY]
    existing = registry.by_pc_id(pc_id) if pc_id else None
    if existing is not None:
        if route_session is not None and existing is not route_session:
            raise ApiError(400, "pc_id belongs to another session")
        return await _renegotiate(registry, existing, sdp, kind, restart)
    if pc_id:
        log.info("unknown_pc_id_new_session", unknown_pc_id=pc_id)
    return await _new_connection(request, route_session, body, sdp, kind)


async def _renegotiate(registry: SessionRegistry, session: Session, sdp: str, kind: str, restart: bool) -> web.Response:
    """A known pc_id: renegotiate, or (``restart_pc``) give a live or suspended session a new pc."""
    connection = session.connection
    if connection is None:
        raise ApiError(409, "session is still connecting; wait for its answer")
    with structlog.contextvars.bound_contextvars(session_id=session.session_id, pc_id=connection.pc_id):
        async with session.lock:
            if not session.routable or connection.closed:
                raise ApiError(404, "session ended")
            was = session.state
            try:
                await connection.renegotiate(sdp, kind, restart_pc=restart)
            except SignalingError as exc:
                raise ApiError(400, str(exc)) from None
            answer = connection.get_answer()
            if answer is None or not session.routable:
                raise ApiError(404, "session ended")
            registry.add_pc_id(session, answer["pc_id"])
            log.info("renegotiated", restart_pc=restart, new_pc_id=answer["pc_id"], session_state=was.value)
            return web.json_response(answer)


async def _new_connection(
    request: web.Request, session: Session | None, body: dict[str, Any], sdp: str, kind: str
) -> web.Response:
    config, registry = request.app[CONFIG_KEY], request.app[REGISTRY_KEY]
    if session is not None and session.state is not SessionState.PENDING:
        raise ApiError(409, "session already has a connection; renegotiate with its pc_id")
    # 503, not 429: "server full" is a temporary server condition, not this client's fault; the JS
    # client treats any 4xx as a final refusal but retries 5xx, and a slot may well free up.
    reserved = session is None
    if reserved and not registry.reserve():
        raise ApiError(503, f"server full: {config.max_sessions} sessions active", {"Retry-After": "2"})
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
                raise ApiError(409, "session already has a connection; renegotiate with its pc_id")
            registry.begin_connect(session)
        try:
            with structlog.contextvars.bound_contextvars(pc_id=connection.pc_id):
                await connection.initialize(sdp, kind)
        except BaseException as exc:
            if reserved:
                registry.release()
            elif session is not None:
                registry.connect_failed(session)
            await connection.close()
            if isinstance(exc, SignalingError):
                raise ApiError(400, str(exc)) from None
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
        raise ApiError(400, "'pc_id' is required and must be a string")
    if not isinstance(candidates, list):
        raise ApiError(400, "'candidates' is required and must be a list")
    session = request.app[REGISTRY_KEY].by_pc_id(pc_id)
    if session is None or session.connection is None or (route_session is not None and session is not route_session):
        raise ApiError(404, "Peer connection not found")
    with structlog.contextvars.bound_contextvars(session_id=session.session_id, pc_id=session.connection.pc_id):
        try:
            await session.connection.add_ice_candidates(candidates)
        except (InvalidCandidateError, SignalingError) as exc:
            raise ApiError(400, str(exc)) from None
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
        raise ApiError(400, f"unsupported transport {transport!r}; this server speaks 'webrtc' only")
    if body.get("enableDefaultIceServers") and not config.ice_servers:
        log.info("default_ice_servers_ignored", reason="no public STUN is ever configured implicitly")
    if not registry.reserve():
        raise ApiError(503, f"server full: {config.max_sessions} sessions active", {"Retry-After": "2"})
    session = registry.create(body.get("body"), reserved=True)
    log.info("session_registered", session_id=session.session_id)
    ice = [s.to_dict() for s in config.ice_servers]
    return web.json_response({"sessionId": session.session_id, "iceConfig": {"iceServers": ice}})


async def session_proxy(request: web.Request) -> web.Response:
    """``/sessions/{id}/{path}``: offer routes for ``.../api/offer``, empty 200 otherwise."""
    session = request.app[REGISTRY_KEY].get(request.match_info["session_id"])
    if session is None:
        raise ApiError(404, SESSION_NOT_FOUND)
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


def _static_handler(root: Path) -> Any:
    base = root.resolve()

    async def serve_file(request: web.Request) -> web.FileResponse:
        rel = request.match_info.get("path", "") or "index.html"
        target = (base / rel).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(base) or not target.is_file():
            raise ApiError(404, "not found")
        return web.FileResponse(target)

    return serve_file


# -- app -----------------------------------------------------------------------------------------


def create_app(config: ServerConfig, bot: BotFactory) -> web.Application:
    """Build the signalling app; shutting it down ends every session (peerLeft, close, cancel)."""
    app = web.Application(middlewares=[_cors_and_errors], client_max_size=config.limits.max_body_bytes)
    app[CONFIG_KEY] = config
    app[REGISTRY_KEY] = SessionRegistry(config.max_sessions, config.connect_timeout_secs, config.bot_grace_secs)
    app[BOT_KEY] = bot
    app.router.add_post("/api/offer", offer)
    app.router.add_patch("/api/offer", patch_offer)
    app.router.add_post("/start", start)
    app.router.add_get("/status", status)
    app.router.add_route("*", "/sessions/{session_id}/{tail:.*}", session_proxy)
    if config.static_dir is not None:
        app.router.add_get("/{path:.*}", _static_handler(config.static_dir))

    async def _shutdown(app: web.Application) -> None:
        log.info("server_shutdown", **app[REGISTRY_KEY].counts())
        await app[REGISTRY_KEY].close_all(config.shutdown_timeout_secs)

    app.on_shutdown.append(_shutdown)
    return app


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
    runner = web.AppRunner(create_app(config, bot), handle_signals=False)
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
