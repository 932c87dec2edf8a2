"""The aiohttp adapter over :class:`~runner.server.handler.SignallingHandler`, and the built-in server.

The signalling itself lives in the handler; this module adds CORS, the error middleware, static
files, ``Expect`` handling and 404/405 for unknown routes. Errors are JSON ``{"detail": "..."}``
with a 4xx for anything the client got wrong; a failed offer never leaves a session behind.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from runner.limits import Limits
from runner.server.config import BotFactory, ServerConfig
from runner.server.errors import ApiError, BadRequest, BodyTooLarge, NotFound
from runner.server.handler import Reply, SignallingHandler, error_reply
from runner.server.sessions import SessionRegistry
from runner.webrtc.errors import clip_repr

log = structlog.get_logger("runner.server")

CONFIG_KEY = web.AppKey("config", ServerConfig)
HANDLER_KEY = web.AppKey("handler", SignallingHandler)
REGISTRY_KEY = web.AppKey("registry", SessionRegistry)

ALLOWED_METHODS = "GET, POST, PATCH, OPTIONS"
ALLOWED_HEADERS = "Content-Type, Authorization"


#: What reading a body raises when the client sent it wrong (or went away while sending it).
_CLIENT_PAYLOAD_ERRORS = (
    aiohttp.ClientError,
    ConnectionError,
    ValueError,
    HttpProcessingError,
    web.RequestPayloadError,
)

__all__ = ["ApiError", "aiohttp_routes", "app_runner", "create_app", "serve"]  # ApiError: kept importable


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
        response = _response(error_reply(exc, request.path))
    response.headers.update(cors)
    return response


# -- adapter -------------------------------------------------------------------------------------


def _body_reader(request: web.Request, limits: Limits) -> Callable[[], Awaitable[bytes]]:
    """Reads the whole body (however many segments it came in) when the handler needs it."""

    async def read() -> bytes:
        if request.content_length is not None and request.content_length > limits.max_body_bytes:
            raise BodyTooLarge(f"request body larger than {limits.max_body_bytes} bytes")
        try:
            return await request.read()  # reads to the end; aiohttp's client_max_size bounds it
        except web.HTTPRequestEntityTooLarge as exc:
            raise BodyTooLarge(f"request body larger than {limits.max_body_bytes} bytes") from exc
        except _CLIENT_PAYLOAD_ERRORS as exc:  # a body cut short, badly chunked or badly encoded
            raise BadRequest(f"could not read request body: {type(exc).__name__}: {exc}") from exc

    return read


def _response(reply: Reply) -> web.Response:
    if reply.json_body is None:
        return web.Response(status=reply.status, headers=reply.headers)
    return web.json_response(reply.json_body, status=reply.status, headers=reply.headers)


def aiohttp_routes(handler: SignallingHandler) -> list[web.RouteDef]:
    """The signalling routes over ``handler``, to mount in any aiohttp app with ``add_routes``.

    The host app runs ``handler.startup()``/``handler.shutdown()`` (e.g. in ``on_startup`` and
    ``on_shutdown``) and adds its own CORS if browsers on other origins call it.
    """

    limits = handler.config.limits

    async def offer(request: web.Request) -> web.Response:
        return _response(await handler.offer(_body_reader(request, limits)))

    async def patch_offer(request: web.Request) -> web.Response:
        return _response(await handler.patch(_body_reader(request, limits)))

    async def start(request: web.Request) -> web.Response:
        return _response(await handler.start(_body_reader(request, limits)))

    async def session_proxy(request: web.Request) -> web.Response:
        info = request.match_info
        reply = await handler.session(info["session_id"], request.method, info["tail"], _body_reader(request, limits))
        return _response(reply)

    async def status(request: web.Request) -> web.Response:
        return _response(handler.status())

    return [
        web.post("/api/offer", offer, expect_handler=_expect),
        web.patch("/api/offer", patch_offer, expect_handler=_expect),
        web.post("/start", start, expect_handler=_expect),
        web.get("/status", status, expect_handler=_expect, allow_head=False),
        web.route("*", "/sessions/{session_id}/{tail:.*}", session_proxy, expect_handler=_expect),
    ]


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
    handler = SignallingHandler(config, bot)
    app = web.Application(middlewares=[_cors_and_errors], client_max_size=config.limits.max_body_bytes)
    app[CONFIG_KEY] = config
    app[HANDLER_KEY] = handler
    app[REGISTRY_KEY] = handler.registry
    app.add_routes(aiohttp_routes(handler))
    extra: list[tuple[str, str, Any]] = []
    if config.static_dir is not None:
        extra.append(("GET", "/{path:.*}", _static_handler(config.static_dir)))
    # last: every request matches one of our routes, so aiohttp's own 404/405 routes (and their
    # Expect handling) are never reached
    extra.append(("*", "/{unrouted:.*}", _unrouted))
    for method, path, route in extra:
        app.router.add_route(method, path, route, expect_handler=_expect)

    async def _startup(app: web.Application) -> None:
        await app[HANDLER_KEY].startup()

    async def _shutdown(app: web.Application) -> None:
        await app[HANDLER_KEY].shutdown()

    app.on_startup.append(_startup)
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
