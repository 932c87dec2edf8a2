"""Specs that answer client requests: the real spec, build, server and transport, a real aiortc peer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner.build import make_bot
from runner.plugins import PluginRegistry
from runner.spec import load_spec
from tests.support.peer import TestPeer, ToneTrack
from tests.support.server import start_test_server

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "pipelines" / "echo.yaml"
HEARD = 0.02

ROUTING = """\
version: 1
ice: {servers: []}
transport: {audio_in_enabled: true, audio_out_enabled: true}
processors: [{id: echo, type: audio.echo}]
events:
  on_client_message:
    - {when: {type: get-count}, action: reply, data: {count: 3}}
    - {when: {type: greet, data: {lang: fr}}, action: reply, data: "bonjour {$request.d.name}"}
    - {when: {type: greet}, action: reply, data: "hello {$request.d.name}"}
    - {when: {type: [echo, repeat]}, action: reply, type: echoed, data: $request}
    - {when: {type: second}, action: reply, data: $request.d.numbers.1}
    - otherwise:   # tells the client, but does not answer: the request still gets an error-response
        - {action: send_app_message, message: {unhandled: true}}
  on_app_message:
    - {when: {message: {kind: ping}}, action: send_app_message, message: {kind: pong}}
    - otherwise: [{action: log, level: debug}]
  on_client_disconnected: [{action: end}]
"""

#: Payloads of every JSON kind, echoed back unchanged by pipelines/echo.yaml.
PAYLOADS: list[Any] = [
    {"n": 7},
    None,
    0,
    -1.5,
    True,
    'text with ünïcödé and "quotes"',
    [],
    [1, [2, [3, {"deep": None}]]],
    {"$request": "{$request.d}", "nested": {"list": [False, "x"]}},
]


def responses_for(peer: TestPeer, request_id: str) -> list[dict[str, Any]]:
    return [m for m in peer.messages if isinstance(m, dict) and m.get("id") == request_id]


async def answer(peer: TestPeer, t: str, d: Any) -> dict[str, Any]:
    """Send a client-message request and return the one reply (server- or error-response) to it."""
    request_id = peer.send_rtvi("client-message", {"t": t, "d": d})
    return dict(
        await peer.wait_for(
            lambda m: (
                isinstance(m, dict)
                and m.get("id") == request_id
                and m.get("type") in ("server-response", "error-response")
            )
        )
    )


@pytest.mark.timeout(90)
async def test_echo_spec_answers_every_request_with_its_own_data() -> None:
    server = await start_test_server(make_bot(load_spec(ECHO, PluginRegistry.discover())))
    try:
        async with TestPeer(server.url, mic=ToneTrack(440.0, 0.3)) as peer:
            await peer.connect()
            await peer.wait_open()
            ids = [peer.send_rtvi("client-message", {"t": f"req-{i}", "d": d}) for i, d in enumerate(PAYLOADS)]
            for i, (request_id, payload) in enumerate(zip(ids, PAYLOADS, strict=True)):
                reply = await peer.wait_rtvi("server-response", request_id, within=15)
                assert reply["label"] == "rtvi-ai"
                assert reply["data"] == {"t": f"req-{i}", "d": payload}
            # a request without `d` is answered with null; the session still echoes audio afterwards
            no_data = peer.send_rtvi("client-message", {"t": "bare"})
            assert (await peer.wait_rtvi("server-response", no_data))["data"] == {"t": "bare", "d": None}
            await peer.wait_audio(frames=25, min_level=HEARD, within=20)
            assert all(len(responses_for(peer, rid)) == 1 for rid in [*ids, no_data])
    finally:
        await server.runner.cleanup()


@pytest.mark.timeout(90)
async def test_when_routes_requests_and_the_unmatched_get_an_error_response(tmp_path: Path) -> None:
    spec_path = tmp_path / "routing.yaml"
    spec_path.write_text(ROUTING)
    server = await start_test_server(make_bot(load_spec(spec_path, PluginRegistry.discover())))
    try:
        async with TestPeer(server.url) as peer:
            await peer.connect()
            await peer.wait_open()
            got = await answer(peer, "get-count", {"whatever": 1})
            assert (got["type"], got["data"]) == ("server-response", {"t": "get-count", "d": {"count": 3}})
            got = await answer(peer, "greet", {"name": "Ann", "lang": "fr"})
            assert (got["type"], got["data"]) == ("server-response", {"t": "greet", "d": "bonjour Ann"})
            got = await answer(peer, "greet", {"name": "Bo"})  # the first matching `when` wins
            assert (got["type"], got["data"]) == ("server-response", {"t": "greet", "d": "hello Bo"})
            got = await answer(peer, "repeat", [1, "two"])
            assert (got["type"], got["data"]) == (
                "server-response",
                {"t": "echoed", "d": {"t": "repeat", "d": [1, "two"]}},
            )
            assert {"unhandled": True} not in peer.messages
            # no `when` matches: `otherwise` runs, and as it does not reply, the connection's
            # immediate error-response answers the request
            got = await answer(peer, "weather", {"city": "Oslo"})
            assert got["type"] == "error-response"
            assert got["data"] == {"error": "client-message 'weather' was not answered by the bot"}
            assert peer.messages.index({"unhandled": True}) < peer.messages.index(got)
            # a path the request does not have: an error-response naming it, and the session goes on
            got = await answer(peer, "second", {"numbers": [1]})
            assert got["type"] == "error-response"
            assert got["data"] == {"error": "reply to 'second': the request has no request.d.numbers.1"}
            got = await answer(peer, "second", {"numbers": [1, {"two": 2}]})
            assert got["data"] == {"t": "second", "d": {"two": 2}}
            # app messages are routed too: a plain JSON message, not an RTVI request
            peer.send({"kind": "ping"})
            await peer.wait_for(lambda m: m == {"kind": "pong"})
            sentinel = await answer(peer, "get-count", None)
            assert sentinel["type"] == "server-response"
            # exactly one answer per request, in order: nothing arrived twice before the sentinel's
            answers = [m for m in peer.messages if isinstance(m, dict) and m.get("type", "").endswith("-response")]
            ids = [m["id"] for m in answers]
            assert len(ids) == len(set(ids)) == 8
            assert peer.messages.count({"kind": "pong"}) == 1
            assert peer.messages.count({"unhandled": True}) == 1  # `otherwise` ran for "weather" only
    finally:
        await server.runner.cleanup()
