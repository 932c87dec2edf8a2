"""The codec filter behaves like the JS client's sdpFilterCodec; candidate helpers."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection

from runner.client.sdp import (
    CodecNotOfferedError,
    candidates_by_section,
    filter_codec,
    negotiated_codecs,
    offered_codecs,
    strip_candidates,
)

OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1 2",
        "m=audio 9 UDP/TLS/RTP/SAVPF 96 9 0 8",
        "c=IN IP4 0.0.0.0",
        "a=mid:0",
        "a=rtpmap:96 opus/48000/2",
        "a=rtcp-fb:96 nack",
        "a=fmtp:96 minptime=10",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
        "a=end-of-candidates",
        "m=video 9 UDP/TLS/RTP/SAVPF 97 98 99 100 101 102",
        "c=IN IP4 0.0.0.0",
        "a=mid:1",
        "a=rtpmap:97 VP8/90000",
        "a=rtcp-fb:97 nack pli",
        "a=rtpmap:98 rtx/90000",
        "a=fmtp:98 apt=97",
        "a=rtpmap:99 H264/90000",
        "a=fmtp:99 packetization-mode=1;level-asymmetry-allowed=1;profile-level-id=42001f",
        "a=rtpmap:100 rtx/90000",
        "a=fmtp:100 apt=99",
        "a=rtpmap:101 H264/90000",
        "a=fmtp:101 packetization-mode=1;level-asymmetry-allowed=1;profile-level-id=42e01f",
        "a=rtpmap:102 rtx/90000",
        "a=fmtp:102 apt=101",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "a=mid:2",
        "a=sctp-port:5000",
        "",
    ]
)


def test_pcmu_keeps_one_payload_and_rewrites_mline() -> None:
    out = filter_codec(OFFER, "audio", "PCMU/8000")
    assert "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" in out
    assert "a=rtpmap:0 PCMU/8000" in out
    for gone in ("opus", "G722", "PCMA", "a=rtcp-fb:96", "a=fmtp:96"):
        assert gone not in out
    assert out.count("VP8/90000") == 1  # video untouched
    assert offered_codecs(out, "audio") == ["PCMU/8000"]


def test_video_prefix_keeps_rtx_of_kept_payloads() -> None:
    out = filter_codec(OFFER, "video", "H264")
    assert "m=video 9 UDP/TLS/RTP/SAVPF 99 100 101 102\r\n" in out
    assert "VP8" not in out and "a=fmtp:98" not in out and "a=rtcp-fb:97" not in out
    vp8 = filter_codec(OFFER, "video", "VP8/90000")
    assert "m=video 9 UDP/TLS/RTP/SAVPF 97 98\r\n" in vp8
    assert "a=fmtp:98 apt=97" in vp8 and "H264" not in vp8


def test_case_sensitive_default_and_unknown() -> None:
    assert filter_codec(OFFER, "audio", None) == OFFER
    assert filter_codec(OFFER, "audio", "default") == OFFER
    with pytest.raises(CodecNotOfferedError, match="pcmu"):
        filter_codec(OFFER, "audio", "pcmu")  # prefix match is case-sensitive, as in JS


def test_candidates_are_stripped_and_listed() -> None:
    found = candidates_by_section(OFFER)
    assert found == [
        ("candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "0", 0),
        ("candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "1", 1),
    ]
    stripped = strip_candidates(OFFER)
    assert "a=candidate" not in stripped and "a=end-of-candidates" not in stripped
    assert stripped.count("\r\n") == OFFER.count("\r\n") - 3


def test_negotiated_codecs_skips_rtx() -> None:
    assert negotiated_codecs(OFFER, "video") == ["VP8", "H264"]
    assert negotiated_codecs(OFFER, "audio") == ["opus", "G722", "PCMU", "PCMA"]


async def test_filter_on_a_real_aiortc_offer() -> None:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        pc.addTransceiver("video", direction="sendrecv")
        offer = await pc.createOffer()
        out = filter_codec(filter_codec(offer.sdp, "audio", "PCMU/8000"), "video", "VP8/90000")
        assert offered_codecs(out, "audio") == ["PCMU/8000"]
        assert [c for c in offered_codecs(out, "video") if not c.startswith("rtx")] == ["VP8/90000"]
    finally:
        await pc.close()
