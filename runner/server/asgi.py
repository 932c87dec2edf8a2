"""A plain ASGI app over :class:`~runner.server.handler.SignallingHandler` (no dependency).

Pure ASGI rather than a Starlette router, so the core needs neither Starlette nor FastAPI, and the
same app mounts in FastAPI, Starlette, Quart or runs alone under uvicorn::

    handler = SignallingHandler(config, bot)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with handler.running():  # sessions end with peerLeft when the app stops
            yield

    app = FastAPI(lifespan=lifespan)
    app.mount("/", signalling_asgi(handler))  # after the app's own routes

A mounted app gets no lifespan events, so the host's lifespan must start and stop the handler;
run alone, this app handles ``lifespan`` itself. CORS is the host app's (e.g. CORSMiddleware).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog

from runner.server.errors import BadRequest, BodyTooLarge
from runner.server.handler import Reply, SignallingHandler, error_reply
from runner.webrtc.errors import clip_repr

log = structlog.get_logger("runner.server.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ALLOWED = {"/api/offer": "POST, PATCH", "/start": "POST", "/status": "GET"}


def _route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette keeps the full path and sets ``root_path``)."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def _body_reader(receive: Receive, max_bytes: int) -> Callable[[], Awaitable[bytes]]:
    async def read() -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("could not read request body: client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:  # stop reading: the rest is never buffered
                raise BodyTooLarge(f"request body larger than {max_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    return read


async def _send_reply(send: Send, reply: Reply) -> None:
    body = b"" if reply.json_body is None else json.dumps(reply.json_body).encode()
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    if reply.json_body is not None:
        headers.append((b"content-type", b"application/json; charset=utf-8"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(handler: SignallingHandler, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await handler.startup()
            except Exception as exc:
                log.error("signalling_startup_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await handler.shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _dispatch(handler: SignallingHandler, method: str, path: str, receive: Receive) -> Reply:
    body = _body_reader(receive, handler.config.limits.max_body_bytes)
    if path.startswith("/sessions/"):
        session_id, slash, tail = path[len("/sessions/") :].partition("/")
        if session_id and slash:  # like the aiohttp route: /sessions/{id}/{tail}
            return await handler.session(session_id, method, tail, body)
    if path == "/api/offer" and method == "POST":
        return await handler.offer(body)
    if path == "/api/offer" and method == "PATCH":
        return await handler.patch(body)
    if path == "/start" and method == "POST":
        return await handler.start(body)
    if path == "/status" and method == "GET":
        return handler.status()
    allowed = _ALLOWED.get(path)
    if allowed is None:
        return Reply(404, {"detail": "not found"})
    return Reply(405, {"detail": f"method {clip_repr(method)} not allowed on {path}"}, {"Allow": allowed})


def signalling_asgi(handler: SignallingHandler) -> AsgiApp:
    """An ASGI app serving ``/api/offer``, ``/start``, ``/sessions/{id}/...`` and ``/status``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(handler, receive, send)
            return
        if scope["type"] == "websocket":  # closing before accept refuses the handshake (403)
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            raise ValueError(f"signalling_asgi serves http and lifespan only, not {scope['type']!r}")
        path = _route_path(scope)
        try:
            reply = await _dispatch(handler, scope["method"], path, receive)
        except Exception as exc:  # the handler answers its own errors; this is a bug in dispatch
            reply = error_reply(exc, path)
        await _send_reply(send, reply)

    return app


__all__ = ["AsgiApp", "signalling_asgi"]
