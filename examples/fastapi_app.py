"""A pipeline-run bot's signalling inside your own FastAPI app, next to the app's own routes.

    pip install -e . fastapi uvicorn
    python examples/fastapi_app.py pipelines/echo.yaml     # then POST offers to /api/offer

The official JS client connects to ``/api/offer`` (or ``/start``) on this app's origin.
tests/server/test_handler_adapters.py and tests/browser/test_fastapi_app.py load this file.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from runner import build
from runner.plugins import PluginRegistry
from runner.server import ServerConfig, SignallingHandler, signalling_asgi
from runner.spec import load_spec


def handler_from_spec(path: str, *, host_addresses: list[str] | None = None) -> SignallingHandler:
    """The YAML file's bot and server settings as a signalling handler."""
    spec = load_spec(path, PluginRegistry.discover())
    return SignallingHandler(build.server_config(spec, host_addresses=host_addresses), build.make_bot(spec))


def build_app(handler: SignallingHandler) -> FastAPI:
    """Your app: its own routes, then the signalling mounted at ``/``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # a mounted ASGI app gets no lifespan events: start and stop the handler here, so that
        # stopping the app ends every session (peerLeft, connection closed, bot cancelled)
        async with handler.running():
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/hello")
    async def hello() -> dict[str, Any]:
        return {"hello": "from your app", "sessions": handler.registry.counts()}

    app.mount("/", signalling_asgi(handler))  # last: the app's own routes match first
    return app


def main(path: str) -> None:
    """Serve ``path``'s bot on its configured host and port."""
    import uvicorn

    handler = handler_from_spec(path)
    config: ServerConfig = handler.config
    uvicorn.run(build_app(handler), host=config.host, port=config.port)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "pipelines/echo.yaml")
