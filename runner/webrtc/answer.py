"""Answering one offer on an aiortc peer connection: transceivers, codec preferences, gating, ICE.

The connection decides *which* pc answers (the current one, or a new one for ``restart_pc``);
this module does the answering itself, in the order aiortc needs:

1. create the offer's audio/video transceivers ourselves, before ``setRemoteDescription``, so
   the directions follow the protocol (mic and camera ``sendrecv``, further ones ``recvonly``)
   and the spec's codec preferences take effect;
2. apply the remote description, translating aiortc's assorted exceptions to ``SignalingError``;
3. gate the receivers (no decoder thread or frame queue for one nobody reads);
4. restrict host candidates to the configured addresses, then create and set the answer;
5. advertise a 1:1-NAT address in the answer's host candidates if one is configured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp

from runner.webrtc.codecs import preferred_capabilities
from runner.webrtc.errors import SignalingError
from runner.webrtc.ice import restrict_host_addresses, rewrite_host_candidates
from runner.webrtc.receivers import gate_receivers


@dataclass(frozen=True)
class AnswerSettings:
    """What shapes an answer: codec preferences by kind, host addresses, the advertised address."""

    codecs: dict[str, list[str]]
    host_addresses: list[str] | None = None
    advertised_address: str | None = None


async def answer_offer(
    pc: RTCPeerConnection,
    sdp: str,
    offer: aiortc_sdp.SessionDescription,
    settings: AnswerSettings,
    logger: Callable[[], Any],
) -> str:
    """Apply ``offer`` (already checked) to ``pc`` and return the answer SDP to send back."""
    prepare_transceivers(pc, offer, settings.codecs, logger)
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
    except (ValueError, AssertionError, KeyError, IndexError) as exc:
        raise SignalingError(f"offer rejected: {exc or type(exc).__name__}") from exc
    except Exception as exc:  # aiortc raises its own error types (OperationError, InvalidStateError)
        raise SignalingError(f"offer rejected: {type(exc).__name__}: {exc}") from exc
    gate_receivers(pc)
    if settings.host_addresses:
        restrict_host_addresses(pc, settings.host_addresses)
    await pc.setLocalDescription(await pc.createAnswer())
    answer_sdp: str = pc.localDescription.sdp
    if settings.advertised_address:
        answer_sdp = rewrite_host_candidates(answer_sdp, settings.advertised_address)
    logger().debug("answer_ready", transceivers=len(pc.getTransceivers()))
    return answer_sdp


def prepare_transceivers(
    pc: RTCPeerConnection,
    offer: aiortc_sdp.SessionDescription,
    codecs: dict[str, list[str]],
    logger: Callable[[], Any],
) -> None:
    """Create the m-lines' transceivers ourselves: directions per order, codec preferences set."""
    existing = pc.getTransceivers()
    ordinal = 0
    for media in offer.media:
        if media.kind not in ("audio", "video"):
            continue
        index, ordinal = ordinal, ordinal + 1
        if any(t.mid == media.rtp.muxId for t in existing):
            continue
        direction = "sendrecv" if index < 2 else "recvonly"
        transceiver = pc.addTransceiver(media.kind, direction=direction)
        existing = pc.getTransceivers()
        wanted = codecs.get(media.kind)
        if wanted:
            caps = preferred_capabilities(media.kind, wanted, (c.mimeType for c in media.rtp.codecs))
            if caps:
                transceiver.setCodecPreferences(caps)
            else:
                logger().info("codec_preferences_not_offered", kind=media.kind, preferred=wanted)


__all__ = ["AnswerSettings", "answer_offer", "prepare_transceivers"]
