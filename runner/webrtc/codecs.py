"""Codec names and preferences: what aiortc supports and how a user may spell a codec."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

KINDS: tuple[str, ...] = ("audio", "video")


class UnknownCodecError(ValueError):
    """A codec name that aiortc cannot negotiate for that media kind."""


def normalize_codec_name(name: str) -> str:
    """Canonical codec name: ``"pcmu"``, ``"PCMU/8000"`` and ``"audio/PCMU"`` all give ``"PCMU"``."""
    text = name.strip()
    if "/" in text:
        head, _, rest = text.partition("/")
        # "audio/PCMU[/8000]" -> "PCMU"; "PCMU/8000" -> "PCMU"
        text = rest.partition("/")[0] if head.lower() in KINDS else head
    upper = text.upper()
    return "opus" if upper == "OPUS" else upper


def supported_codecs(kind: str) -> list[str]:
    """Codec names aiortc can negotiate for ``kind`` (``"audio"`` or ``"video"``), RTX excluded."""
    if kind not in KINDS:
        raise ValueError(f"unknown media kind {kind!r} (expected 'audio' or 'video')")
    names: list[str] = []
    for cap in RTCRtpSender.getCapabilities(kind).codecs:
        name = normalize_codec_name(cap.mimeType)
        if name != "RTX" and name not in names:
            names.append(name)
    return names


def validate_codecs(codecs: dict[str, list[str]] | None) -> dict[str, list[str]]:
    """Normalise a ``{"audio": [...], "video": [...]}`` preference map, rejecting unknown names."""
    result: dict[str, list[str]] = {}
    for kind, names in (codecs or {}).items():
        if kind not in KINDS:
            raise UnknownCodecError(f"unknown media kind {kind!r} in codecs (expected 'audio' or 'video')")
        known = supported_codecs(kind)
        normalized: list[str] = []
        for raw in names:
            name = normalize_codec_name(raw)
            if name not in known:
                raise UnknownCodecError(f"{kind} codec {raw!r} is not supported (supported: {', '.join(known)})")
            if name not in normalized:
                normalized.append(name)
        result[kind] = normalized
    return result


def preferred_capabilities(kind: str, names: Sequence[str], offered: Iterable[str]) -> list[RTCRtpCodecCapability]:
    """Capabilities for ``setCodecPreferences``: our order, limited to what the peer offered.

    Returns an empty list (aiortc's defaults) when nothing preferred was offered, so a client
    that filtered its offer down to one codec still gets that codec.
    """
    offered_names = {normalize_codec_name(n) for n in offered}
    wanted = [n for n in names if n in offered_names]
    if not wanted:
        return []
    caps = RTCRtpSender.getCapabilities(kind).codecs
    chosen: list[RTCRtpCodecCapability] = []
    for name in wanted:
        chosen.extend(c for c in caps if normalize_codec_name(c.mimeType) == name)
    if kind == "video":
        chosen.extend(c for c in caps if normalize_codec_name(c.mimeType) == "RTX")
    return chosen
