"""The seed's SmallWebRTC API (docs in /work/shared/seeds) as a user of it would call it.

Each documented method, event and handler shape is checked here; the README's "Differences
from the seed API" lists every place where we deliberately differ.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from runner.params import TRANSPORT_EVENTS, TransportParams
from runner.webrtc import IceServer, SmallWebRTCConnection, SmallWebRTCTransport

#: (method, async?) of SmallWebRTCConnection, from the seed's "Methods".
CONNECTION_METHODS = [
    ("initialize", True),
    ("connect", True),
    ("close", True),
    ("disconnect", True),
    ("renegotiate", True),
    ("get_answer", False),
    ("send_app_message", False),
    ("is_connected", False),
    ("audio_input_track", False),
    ("video_input_track", False),
    ("replace_audio_track", False),
    ("replace_video_track", False),
    ("ask_to_renegotiate", False),
]
SEED_CONNECTION_EVENTS = [
    "app-message",
    "track-started",
    "track-ended",
    "connecting",
    "connected",
    "disconnected",
    "closed",
    "failed",
    "new",
]
SEED_TRANSPORT_EVENTS = ["on_app_message", "on_client_connected", "on_client_disconnected", "on_client_closed"]


@pytest.mark.parametrize(("name", "is_async"), CONNECTION_METHODS)
def test_connection_methods_have_the_seed_shape(name: str, is_async: bool) -> None:
    method = getattr(SmallWebRTCConnection, name)
    assert inspect.iscoroutinefunction(method) is is_async


def test_seed_call_forms_bind() -> None:
    """The seed's example calls bind to our signatures (keywords as the seed spells them)."""
    inspect.signature(SmallWebRTCConnection).bind(ice_servers=["stun:stun.example.org:3478"])
    inspect.signature(SmallWebRTCConnection).bind(
        ice_servers=[IceServer(urls="turn:turn.example.org:3478", username="u", credential="p")]
    )
    inspect.signature(SmallWebRTCConnection.initialize).bind(None, sdp="v=0", type="offer")
    inspect.signature(SmallWebRTCConnection.renegotiate).bind(None, sdp="v=0", type="offer", restart_pc=False)
    inspect.signature(SmallWebRTCTransport).bind(
        webrtc_connection=None, params=TransportParams(), input_name="in", output_name="out"
    )
    for name in ("send_image", "send_audio"):
        assert inspect.iscoroutinefunction(getattr(SmallWebRTCTransport, name))


def test_every_seed_event_can_be_handled_sync_or_async() -> None:
    conn = SmallWebRTCConnection(ice_servers=[])
    transport = SmallWebRTCTransport(conn, TransportParams())

    async def on_async(*_: Any) -> None: ...

    def on_sync(*_: Any) -> None: ...

    for name in SEED_CONNECTION_EVENTS:
        conn.event_handler(name)(on_async)
        conn.add_event_handler(name, on_sync)
        assert conn.has_event_handlers(name)
    for name in SEED_TRANSPORT_EVENTS:
        assert name in TRANSPORT_EVENTS
        transport.event_handler(name)(on_async)
        transport.add_event_handler(name, on_sync)
        assert transport.has_event_handlers(name)


async def test_handlers_get_the_emitter_then_the_seed_arguments() -> None:
    """A connection's ``connected`` reaches ``on_connected(connection)`` and ``on_client_connected(transport, conn)``.

    (``on_app_message(transport, message, pc_id)`` is checked with a real peer in test_transport.)
    """
    conn = SmallWebRTCConnection(ice_servers=[])
    transport = SmallWebRTCTransport(conn, TransportParams())
    seen: list[tuple[Any, ...]] = []
    transport.add_event_handler("on_client_connected", lambda *args: seen.append(args))
    conn.add_event_handler("connected", lambda *args: seen.append(args))
    await conn._call_event_handler("connected")  # noqa: SLF001 - as aiortc's state change fires it
    assert sorted(seen, key=len) == [(conn,), (transport, conn)]


def test_ice_servers_none_means_no_servers_not_a_public_stun() -> None:
    assert SmallWebRTCConnection(ice_servers=None).ice_servers == []


def test_transport_params_defaults_as_documented() -> None:
    params = TransportParams()
    assert (params.audio_in_channels, params.audio_out_channels) == (1, 1)
    assert (params.video_out_width, params.video_out_height, params.video_out_framerate) == (640, 480, 30)
    assert params.audio_in_enabled is params.audio_out_enabled is False
    assert TransportParams(audio_out_channels=2).audio_out_channels == 2  # the seed's "2 for stereo"
