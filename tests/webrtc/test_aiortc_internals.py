"""The private aiortc/aioice attributes we rely on exist, and start-up says which one if not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aioice
import aiortc
import pytest
from aiortc import RTCRtpReceiver, RTCRtpSender

from runner.webrtc import aiortc_internals
from runner.webrtc.aiortc_internals import InternalsError, check_internals
from runner.webrtc.connection import SmallWebRTCConnection
from runner.webrtc.ice import restrict_host_addresses
from tests.support.server import start_test_server

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def fresh_check() -> Iterator[None]:
    """The check runs once per process; these tests need it to look again."""
    aiortc_internals._checked.cache_clear()
    yield
    aiortc_internals._checked.cache_clear()


def drop_after_init(monkeypatch: pytest.MonkeyPatch, cls: type, attribute: str) -> None:
    """Simulate an aiortc release that no longer sets ``attribute`` on ``cls`` instances."""
    original = cls.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        delattr(self, attribute)

    monkeypatch.setattr(cls, "__init__", init)


def test_installed_versions_pass() -> None:
    check_internals()
    assert aiortc_internals.installed_versions() == f"aiortc {aiortc.__version__}, aioice {aioice.__version__}"


async def test_installed_versions_pass_inside_a_loop() -> None:
    check_internals()


REMOVED = [
    (RTCRtpReceiver, "_RTCRtpReceiver__jitter_buffer"),
    (RTCRtpReceiver, "_RTCRtpReceiver__codecs"),
    (RTCRtpReceiver, "_enabled"),
    (RTCRtpSender, "_RTCRtpSender__rtp_task"),
    (RTCRtpSender, "_RTCRtpSender__encoder"),
    (aioice.Connection, "_transport_policy"),
]


@pytest.mark.parametrize(("cls", "attribute"), REMOVED, ids=[a for _, a in REMOVED])
async def test_server_start_names_a_missing_attribute(
    monkeypatch: pytest.MonkeyPatch, cls: type, attribute: str
) -> None:
    drop_after_init(monkeypatch, cls, attribute)
    with pytest.raises(InternalsError) as caught:
        await start_test_server()
    message = str(caught.value)
    assert repr(attribute) in message
    assert f"aiortc {aiortc.__version__}" in message and f"aioice {aioice.__version__}" in message


async def test_renamed_method_fails_the_first_library_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(RTCRtpSender, "_run_rtp")
    conn = SmallWebRTCConnection(ice_servers=[], host_addresses=["127.0.0.1"])
    offer = aiortc.RTCPeerConnection()
    offer.addTransceiver("audio")
    restrict_host_addresses(offer, ["127.0.0.1"])
    try:
        await offer.setLocalDescription(await offer.createOffer())
        with pytest.raises(InternalsError, match="'_run_rtp'"):
            await conn.initialize(sdp=offer.localDescription.sdp, type="offer")
        assert conn.pc is None  # nothing was built before the check failed
    finally:
        await offer.close()
        await conn.close()


async def test_server_start_names_a_missing_sctp_receive_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(aiortc.RTCSctpTransport, "_data_channel_receive")
    with pytest.raises(InternalsError, match="_data_channel_receive") as caught:
        await start_test_server()
    assert f"aiortc {aiortc.__version__}" in str(caught.value)
