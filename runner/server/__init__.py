"""HTTP signalling for SmallWebRTC clients: the built-in aiohttp server and adapters for your own app."""

from runner.server.app import aiohttp_routes, create_app, serve
from runner.server.asgi import signalling_asgi
from runner.server.config import BotFactory, ServerConfig, SessionInfo
from runner.server.handler import Reply, SignallingHandler
from runner.server.sessions import Session, SessionRegistry

__all__ = [
    "BotFactory",
    "Reply",
    "ServerConfig",
    "Session",
    "SessionInfo",
    "SessionRegistry",
    "SignallingHandler",
    "aiohttp_routes",
    "create_app",
    "serve",
    "signalling_asgi",
]
