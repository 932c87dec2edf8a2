"""Server configuration and the bot-factory contract."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.limits import DEFAULT_LIMITS, Limits
from runner.webrtc.connection import SmallWebRTCConnection
from runner.webrtc.ice import IceServer


@dataclass
class ServerConfig:
    """Everything the signalling server needs; each field has a safe local default."""

    host: str = "127.0.0.1"
    port: int = 7860
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    """Origins allowed cross-origin; ``["*"]`` allows any, ``[]`` none."""
    max_sessions: int = 32
    """Sessions (pending, live or suspended, until their bot has finished); more get 503."""
    ice_servers: list[IceServer] = field(default_factory=list)
    """Used by the server pc and returned in ``/start``'s ``iceConfig``; empty = host candidates only."""
    host_addresses: list[str] | None = None
    """Local IPs to gather ICE candidates from (None: every interface but loopback)."""
    advertised_address: str | None = None
    """1:1 NAT: public IP written into host candidates of answers."""
    codecs: dict[str, list[str]] | None = None
    keepalive_timeout_secs: float | None = 5.0
    """A client whose ``ping:`` stops this long is suspended (None: rely on ICE only)."""
    resume_window_secs: float = 30.0
    """A suspended session ends unless the client restarts its pc (``restart_pc``) within this."""
    connect_timeout_secs: float = 30.0
    """A pc not connected this long after its offer is closed; also the TTL of an unused ``/start``."""
    static_dir: Path | None = None
    """Served at ``/`` when set (the test page)."""
    limits: Limits = DEFAULT_LIMITS
    """Bounds on everything a client controls (see :class:`runner.limits.Limits`)."""
    bot_grace_secs: float = 2.0
    """How long a bot may keep running after its connection closed before it is cancelled."""
    shutdown_timeout_secs: float = 5.0


@dataclass
class SessionInfo:
    """What the bot factory learns about its session."""

    session_id: str
    pc_id: str
    request_data: Any = None


BotFactory = Callable[[SmallWebRTCConnection, SessionInfo], Awaitable[None]]
