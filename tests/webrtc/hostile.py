"""What a hostile client puts on the data channel, and how a real peer checks the session still answers.

Hypothesis strategies and real-peer helpers shared by the data-channel tests
(tests/webrtc/test_datachannel_hostile.py, test_datachannel_properties.py) and the fuzz run's
``datachannel`` target (tests/fuzz/datachannel.py, ``bench/fuzz.py``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from runner.webrtc import SmallWebRTCConnection
from tests.support.peer import TestPeer
from tests.support.server import RunningServer

RTVI_TYPES = ["client-ready", "client-message", "disconnect-bot", "send-text", "dtmf", "bogus-type"]

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()

#: Any JSON value, nested a few levels.
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)

#: RTVI envelopes whose fields have any type (or are missing).
rtvi_envelopes: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"label": st.just("rtvi-ai")},
    optional={
        "type": st.sampled_from(RTVI_TYPES) | json_values,
        "id": st.text(max_size=12) | json_values,
        "data": json_values | st.fixed_dictionaries({"t": json_values, "d": json_values}),
    },
)

#: Signalling envelopes whose payload has any shape; some are valid trackStatus messages.
signalling_envelopes: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "type": st.just("signalling"),
        "message": json_values
        | st.fixed_dictionaries(
            {"type": st.just("trackStatus") | json_values},
            optional={"receiver_index": st.integers(-3, 5) | json_values, "enabled": st.booleans() | json_values},
        ),
    }
)


def nested(depth: int) -> str:
    """``[[[...]]]`` ``depth`` levels deep."""
    return "[" * depth + "]" * depth


#: Whole frames as a client could send them: text or bytes, JSON or not.
frames: st.SearchStrategy[str | bytes] = st.one_of(
    st.text(max_size=64),
    st.binary(max_size=64),
    json_values.map(json.dumps),
    rtvi_envelopes.map(json.dumps),
    signalling_envelopes.map(json.dumps),
    st.integers(1, 3000).map(nested),
    st.text(max_size=16).map(lambda s: "ping" + s),
    json_values.map(lambda v: json.dumps(v).encode()),
)


# -- a real peer checking that the session still answers ----------------------------------------


async def send_raw(peer: TestPeer, ppid: int, payload: bytes) -> None:
    """Put ``payload`` on the peer's channel with any PPID, bypassing aiortc's encoding and size check."""
    channel = peer.channel
    assert channel is not None
    transport = channel.transport
    channel._addBufferedAmount(len(payload))
    transport._data_channel_queue.append((channel, ppid, payload))
    await transport._data_channel_flush()


async def answered(peer: TestPeer, send: Any, answer_type: str, within: float = 10.0) -> dict[str, Any]:
    """``send()`` (returning a request id) until ``answer_type`` comes back for it (retried while rate-limited)."""
    async with asyncio.timeout(within):
        while True:
            rid = send()
            try:
                return await peer.wait_rtvi(answer_type, rid, within=1.0)
            except TimeoutError:
                continue  # dropped by the rate limit: a later one gets a token


def recorder_reply(token: str) -> Any:
    """What the test server's recording bot answers to a client-message carrying ``token``."""
    return {"echo": token}


async def ask(peer: TestPeer, reply: Callable[[str], Any] = recorder_reply) -> None:
    """A client-message request must get its server-response."""
    token = uuid.uuid4().hex[:8]
    resp = await answered(peer, lambda: peer.send_rtvi("client-message", {"t": "ask", "d": token}), "server-response")
    assert resp["data"] == {"t": "ask", "d": reply(token)}


async def ready(peer: TestPeer) -> None:
    """client-ready must still get its bot-ready."""
    resp = await answered(peer, peer.send_client_ready, "bot-ready")
    assert resp["data"]["version"] == "2.2.0"


async def open_peer(server: RunningServer, **kwargs: Any) -> tuple[TestPeer, SmallWebRTCConnection]:
    """A connected peer whose client-ready was answered, and the newest server-side connection."""
    peer = TestPeer(server.url, **kwargs)
    await peer.connect()
    await peer.wait_open()
    await ready(peer)
    return peer, server.recorder.connections[-1]
