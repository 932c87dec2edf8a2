"""Offer shape, checked before any peer connection exists.

An offer decides how many transceivers (each with its own decoder thread in aiortc) the server
builds, so it is checked against :class:`~runner.limits.Limits` first, with a linear line scan
that does no work per m-line beyond counting, and only then handed to aiortc's parser. Every
refusal is an :class:`~runner.webrtc.errors.OfferRejected` whose message names the m-line and
what is wrong with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aiortc import sdp as aiortc_sdp

from runner.limits import Limits
from runner.webrtc.errors import OfferRejected, clip, clip_repr
from runner.webrtc.ice import InvalidCandidateError, parse_candidate_sdp

#: m-line kinds the protocol uses; anything else (``text``, ``message``, ...) is refused.
KNOWN_KINDS = ("audio", "video", "application")

_MLINE = re.compile(r"^m=([^ ]+) ([0-9]{1,5}) ([A-Z/]+) (.+)$")


@dataclass
class SectionShape:
    """What the scan learnt about one m-section (numbered from 0, like ``sdp_mline_index``)."""

    index: int
    kind: str
    formats: int
    lines: int = 1
    rtpmaps: int = 0
    candidates: list[str] = field(default_factory=list)
    attributes: set[str] = field(default_factory=set)
    mids: list[str] = field(default_factory=list)


@dataclass
class OfferShape:
    """The session-level attributes and the m-sections of an offer, as a line scan sees them."""

    session_lines: int = 0
    session_attributes: set[str] = field(default_factory=set)
    bundle_mids: list[str] = field(default_factory=list)
    sections: list[SectionShape] = field(default_factory=list)

    def count(self, kind: str) -> int:
        """How many m-sections of ``kind``."""
        return sum(1 for s in self.sections if s.kind == kind)


_DIRECTIONS = {"sendrecv", "sendonly", "recvonly", "inactive"}

#: Attributes every section needs, from the section itself or the session level.
_REQUIRED = {"fingerprint": "a=fingerprint", "ice-ufrag": "a=ice-ufrag", "ice-pwd": "a=ice-pwd", "setup": "a=setup"}


def check_offer(sdp: Any, type: Any, limits: Limits) -> aiortc_sdp.SessionDescription:
    """Validate an offer against ``limits`` and parse it; raise :class:`OfferRejected` with a reason."""
    if type != "offer":
        raise OfferRejected(f"'type' must be 'offer', got {clip_repr(type)}")
    if not isinstance(sdp, str) or not sdp.strip():
        raise OfferRejected("'sdp' must be a non-empty SDP string")
    if not sdp.lstrip().startswith("v=0"):
        raise OfferRejected("'sdp' is not an SDP offer (it must start with 'v=0')")
    shape = scan_offer(sdp, limits)
    check_shape(shape, limits)
    try:
        parsed = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted errors (assert, int(), split) on garbage
        raise OfferRejected(f"'sdp' could not be parsed: {type_name(exc)}: {clip(str(exc))}") from exc
    _check_parsed(parsed, shape)
    return parsed


def scan_offer(sdp: str, limits: Limits) -> OfferShape:
    """Split ``sdp`` into sections the way aiortc does (``str.splitlines``), counting as it goes.

    Stops with :class:`OfferRejected` as soon as a count passes its limit, so a flood of m-lines
    or attribute lines costs no more than reading it once.
    """
    shape = OfferShape()
    section: SectionShape | None = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            section = _open_section(line, len(shape.sections), limits)
            shape.sections.append(section)
            if shape.count(section.kind) > _kind_limit(section.kind, limits):
                raise OfferRejected(
                    f"offer has more than {_kind_limit(section.kind, limits)} {section.kind} m-line(s) "
                    f"(m-line {section.index} is one too many)"
                )
            continue
        attr, _, value = line[2:].partition(":") if line.startswith("a=") else ("", "", "")
        if section is None:
            shape.session_lines += 1
            if shape.session_lines > limits.max_lines_per_section:
                raise OfferRejected(f"offer has more than {limits.max_lines_per_section} session-level lines")
            if attr:
                shape.session_attributes.add(attr)
            if attr == "group" and value.startswith("BUNDLE"):
                shape.bundle_mids.extend(value.split()[1:])
            continue
        section.lines += 1
        if section.lines > limits.max_lines_per_section:
            raise OfferRejected(f"m-line {section.index} has more than {limits.max_lines_per_section} lines")
        if not attr:
            continue
        section.attributes.add(attr)
        if attr == "rtpmap":
            section.rtpmaps += 1
            if section.rtpmaps > limits.max_codecs_per_section:
                raise OfferRejected(
                    f"m-line {section.index} has more than {limits.max_codecs_per_section} a=rtpmap lines"
                )
        elif attr == "candidate":
            section.candidates.append(value)
        elif attr == "mid":
            section.mids.append(value)
    return shape


def check_shape(shape: OfferShape, limits: Limits) -> None:
    """Required attributes per section, and inline candidates within ``max_candidates_per_pc``."""
    if not shape.sections:
        raise OfferRejected("'sdp' has no media sections")
    total = 0
    mids: set[str] = set()
    for section in shape.sections:
        missing = [name for attr, name in _REQUIRED.items() if not _has(shape, section, attr)]
        if section.kind != "application" and not section.attributes & _DIRECTIONS:
            missing.append("a direction (a=sendrecv, a=sendonly, a=recvonly or a=inactive)")
        if missing:
            raise OfferRejected(f"m-line {section.index} ({section.kind}) lacks {', '.join(missing)}")
        # aiortc routes transceivers by mid; browsers always send exactly one
        if len(section.mids) != 1 or not section.mids[0] or section.mids[0] in mids:
            raise OfferRejected(f"m-line {section.index} ({section.kind}) needs exactly one a=mid, unique in the offer")
        mids.add(section.mids[0])
        for value in section.candidates:
            try:
                parse_candidate_sdp(value)
            except InvalidCandidateError as exc:
                raise OfferRejected(f"m-line {section.index}: {exc}") from exc
        total += len(section.candidates)
    unknown = [mid for mid in shape.bundle_mids if mid not in mids]
    if unknown:
        raise OfferRejected(f"a=group:BUNDLE names mid {clip_repr(unknown[0])}, which no m-line has")
    if total > limits.max_candidates_per_pc:
        raise OfferRejected(f"offer carries {total} ICE candidates; at most {limits.max_candidates_per_pc} allowed")


def _open_section(line: str, index: int, limits: Limits) -> SectionShape:
    match = _MLINE.match(line)
    if match is None:
        raise OfferRejected(f"m-line {index} is malformed: {clip_repr(line)}")
    kind = match.group(1)
    if kind not in KNOWN_KINDS:
        raise OfferRejected(
            f"m-line {index} has unknown media kind {clip_repr(kind)}; expected audio, video or application"
        )
    formats = len(match.group(4).split())
    if formats > limits.max_codecs_per_section:
        raise OfferRejected(f"m-line {index} lists {formats} formats; at most {limits.max_codecs_per_section} allowed")
    return SectionShape(index=index, kind=kind, formats=formats)


def _kind_limit(kind: str, limits: Limits) -> int:
    if kind == "audio":
        return limits.max_audio_sections
    if kind == "video":
        return limits.max_video_sections
    return limits.max_application_sections


def _has(shape: OfferShape, section: SectionShape, attr: str) -> bool:
    return attr in section.attributes or attr in shape.session_attributes


def _check_parsed(parsed: aiortc_sdp.SessionDescription, shape: OfferShape) -> None:
    """What aiortc made of the text must agree with the scan (a value can be present but empty)."""
    if [m.kind for m in parsed.media] != [s.kind for s in shape.sections]:
        raise OfferRejected("'sdp' m-lines could not be read consistently")
    for index, media in enumerate(parsed.media):
        if media.dtls is None or not media.dtls.fingerprints:
            raise OfferRejected(f"m-line {index} ({media.kind}) lacks a=fingerprint")
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise OfferRejected(f"m-line {index} ({media.kind}) has an empty a=ice-ufrag or a=ice-pwd")


def type_name(exc: BaseException) -> str:
    """Short exception class name for messages."""
    return type(exc).__name__


__all__ = ["KNOWN_KINDS", "OfferShape", "SectionShape", "check_offer", "check_shape", "scan_offer"]
