"""HTTP signalling server (aiohttp) for SmallWebRTC clients."""

from runner.server.app import create_app, serve
from runner.server.config import BotFactory, ServerConfig, SessionInfo
from runner.server.sessions import Session, SessionRegistry

__all__ = ["BotFactory", "ServerConfig", "Session", "SessionInfo", "SessionRegistry", "create_app", "serve"]
