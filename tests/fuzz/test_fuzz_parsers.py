"""Every parser of client input gives a result or its one documented error, whatever the input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiortc import RTCIceCandidate
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runner.limits import DEFAULT_LIMITS, JsonLimitError, loads_bounded
from runner.webrtc.connection import SmallWebRTCConnection
from runner.webrtc.errors import OfferRejected, SignalingError
from runner.webrtc.ice import InvalidCandidateError, parse_candidate
from runner.webrtc.offer import check_offer
from tests.fuzz.properties import aiortc_offer
from tests.fuzz.strategies import CHROMIUM_OFFER, body_bytes, candidate_entries, json_values, mutated_sdp

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore:Generating overly large repr")]

FAST = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SEEDS = [asyncio.run(aiortc_offer()), CHROMIUM_OFFER]


CANDIDATE_INPUT = st.one_of(candidate_entries(), json_values())
BODY_INPUT = body_bytes()
SDP_INPUT = mutated_sdp(SEEDS)


def candidate_property(item: object) -> None:
    """``parse_candidate`` gives a candidate, None (end marker) or InvalidCandidateError."""
    try:
        result = parse_candidate(item)
    except InvalidCandidateError as exc:
        assert str(exc) and len(str(exc)) < 400
        return
    assert result is None or isinstance(result, RTCIceCandidate)


def json_property(raw: bytes) -> None:
    """``loads_bounded`` gives a JSON value or JsonLimitError."""
    try:
        value = loads_bounded(raw, DEFAULT_LIMITS.max_json_depth)
    except JsonLimitError as exc:
        assert str(exc)
        return
    json.dumps(value)  # a plain JSON value came out


def offer_property(sdp: str) -> None:
    """``check_offer`` gives a parsed offer or OfferRejected with a reason."""
    try:
        check_offer(sdp, "offer", DEFAULT_LIMITS)
    except OfferRejected as exc:
        assert str(exc) and "Traceback" not in str(exc)


def initialize_property(sdp: str) -> None:
    """A library user's ``initialize`` answers or raises SignalingError, and cleans up."""
    asyncio.run(_answer(sdp))


@settings(FAST, max_examples=300)
@given(item=CANDIDATE_INPUT)
@example(item={"candidate": "candidate:1 1 udp 1 resolver.example 9 typ host", "sdp_mid": "0"})
@example(item={"candidate": "candidate:1 1 udp 99999999999999999999 127.0.0.1 9 typ host", "sdp_mid": "0"})
@example(item={"candidate": "candidate:1 1 udp 1 127.0.0.1 ١٢ typ host", "sdp_mid": "0"})
@example(item={"candidate": "candidate:1 1 udp 1 127.0.0.1 " + "9" * 5000 + " typ host", "sdp_mid": "0"})
@example(item={"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host raddr", "sdp_mline_index": 0})
def test_parse_candidate_only_raises_its_own_error(item: object) -> None:
    candidate_property(item)


@settings(FAST, max_examples=200)
@given(raw=BODY_INPUT)
@example(raw=b"[" * 100_000)
@example(raw=b'{"a": ' * 50 + b"1" + b"}" * 50)
@example(raw=b"1" * 5000)
def test_loads_bounded_only_raises_json_limit_error(raw: bytes) -> None:
    json_property(raw)


@settings(FAST, max_examples=300)
@given(sdp=SDP_INPUT)
def test_check_offer_only_raises_offer_rejected(sdp: str) -> None:
    offer_property(sdp)


async def _answer(sdp: str) -> None:
    connection = SmallWebRTCConnection(host_addresses=["127.0.0.1"])
    try:
        await connection.initialize(sdp, "offer")
        assert connection.get_answer() is not None
    except SignalingError as exc:
        assert str(exc)
    finally:
        await connection.close()


@settings(FAST, max_examples=60)
@given(sdp=SDP_INPUT)
@example(sdp=SEEDS[0].replace("a=sendrecv\r\n", "", 1))  # aiortc: "None is not in list"
@example(sdp=SEEDS[0].replace("m=audio", "x=audio", 1))  # BUNDLE names a mid no m-line has
def test_initialize_answers_or_raises_signaling_error(sdp: str) -> None:
    initialize_property(sdp)


#: name -> (input strategy, property, share of --cases): what bench/fuzz.py runs long.
PARSER_PROPERTIES: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], None], float]] = {
    "parse_candidate": (CANDIDATE_INPUT, candidate_property, 1.0),
    "loads_bounded": (BODY_INPUT, json_property, 1.0),
    "check_offer": (SDP_INPUT, offer_property, 1.0),
    "initialize": (SDP_INPUT, initialize_property, 0.1),
}
