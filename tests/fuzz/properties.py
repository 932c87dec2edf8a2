"""One fuzz case per HTTP target, drawn from the shared strategies and checked by :class:`FuzzEnv`.

The suite (tests/fuzz/test_fuzz_http.py) and ``bench/fuzz.py`` both run these, with
``@given(st.data())`` and a different ``max_examples``.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection
from hypothesis import strategies as st

from runner.webrtc.ice import restrict_host_addresses
from tests.fuzz.harness import FuzzEnv, Outcome
from tests.fuzz.strategies import (
    CHROMIUM_OFFER,
    body_bytes,
    json_values,
    mutated_sdp,
    offer_bodies,
    patch_bodies,
    raw_requests,
    start_bodies,
)


async def aiortc_offer() -> str:
    """A real offer from aiortc, shaped like the JS client's: audio, camera, data channel, candidates."""
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    pc.addTransceiver("video", direction="sendrecv")
    pc.createDataChannel("chat")
    restrict_host_addresses(pc, ["127.0.0.1"])
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


def seeds(env: FuzzEnv) -> list[str]:
    """The two seed offers (aiortc's is made once per environment)."""
    cached = getattr(env, "_seed_offers", None)
    if cached is None:
        cached = [env.call(aiortc_offer()), CHROMIUM_OFFER]
        env._seed_offers = cached  # type: ignore[attr-defined]
    return list(cached)


def offer_case(env: FuzzEnv, data: st.DataObject) -> Outcome:
    """POST an offer (``/api/offer`` or a fresh ``/start`` session's route): fuzzed SDP and fields."""
    sdps = mutated_sdp(seeds(env))
    shaped = offer_bodies(sdps)
    body: Any = data.draw(st.one_of(shaped, shaped, shaped, shaped, body_bytes(shaped)), "body")
    # draws never depend on what earlier cases left behind (hypothesis replays must match):
    # an index is drawn, and mapped onto whatever pc_ids exist now
    known = data.draw(st.integers(0, 3 * 20 - 1), "renegotiate a known pc_id (< 20)")
    if isinstance(body, dict) and known < 20 and env.accepted_pc_ids:
        body = {**body, "pc_id": env.accepted_pc_ids[known % len(env.accepted_pc_ids)]}
    path = "/api/offer"
    if data.draw(st.integers(0, 3), "route") == 0:
        path = f"/sessions/{env.new_session_id()}/api/offer"
    return env.offer(body, path)


def patch_case(env: FuzzEnv, data: st.DataObject) -> Outcome:
    """PATCH candidates at the good client's pc, an accepted fuzz pc, or a junk pc_id."""
    known = [env.good_pc_id(), *env.accepted_pc_ids]
    pick = st.integers(0, 19).map(lambda i: known[i % len(known)])  # see offer_case
    pc_ids = st.one_of(pick, pick, pick, st.text(max_size=60), json_values(3))
    shaped = patch_bodies(pc_ids)
    body: Any = data.draw(st.one_of(shaped, shaped, shaped, body_bytes(shaped)), "body")
    path = "/api/offer"
    if data.draw(st.integers(0, 3), "route") == 0:  # the /sessions route of the pc's own session
        pc_id = body.get("pc_id") if isinstance(body, dict) else None
        sid = env.session_id_of(pc_id) if isinstance(pc_id, str) else None
        path = f"/sessions/{sid or env.new_session_id()}/api/offer"
    return env.patch(body, path)


def start_case(env: FuzzEnv, data: st.DataObject) -> Outcome:
    """POST /start with fuzzed bodies (empty allowed)."""
    body = data.draw(st.one_of(start_bodies().map(_json), body_bytes(start_bodies()), st.just(b"")), "body")
    return env.start_session(body)


def raw_case(env: FuzzEnv, data: st.DataObject) -> Outcome:
    """A whole raw HTTP request: fuzzed request line, headers and framing."""
    return env.raw(data.draw(raw_requests(), "request"))


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


CASES = {"offer": offer_case, "patch": patch_case, "start": start_case, "raw": raw_case}
