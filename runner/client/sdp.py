"""SDP helpers for the client: the JS client's codec filter and candidate stripping.

:func:`filter_codec` behaves like the JS transport's ``sdpFilterCodec``: for every m-section
of one kind it keeps the payload types whose ``a=rtpmap:<pt> <codec>`` *starts with* the
given string (case-sensitive, so ``"opus/48000/2"``, ``"PCMU/8000"``, ``"H264"`` all work)
plus the RTX payloads of those (``a=fmtp:<rtx> apt=<kept>``), drops the ``rtpmap``/``fmtp``/
``rtcp-fb`` lines of every other payload and rewrites the ``m=`` payload list. It is applied to
the SDP sent to the server only; the local description keeps every codec.
"""

from __future__ import annotations

import re

_RTPMAP = re.compile(r"^a=rtpmap:(\d+) (.*)$")
_APT = re.compile(r"^a=fmtp:(\d+) apt=(\d+)\s*$")
_PT_LINE = re.compile(r"^a=(?:fmtp|rtcp-fb|rtpmap):(\d+)[ \t]")


class CodecNotOfferedError(ValueError):
    """The requested codec matches no payload type of that media kind."""


def _sections(lines: list[str], kind: str) -> list[tuple[int, int]]:
    """Index ranges ``[start, end)`` of the m-sections of ``kind``."""
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for i, line in enumerate(lines):
        if line.startswith("m="):
            if start is not None:
                ranges.append((start, i))
                start = None
            if line.startswith(f"m={kind} "):
                start = i
    if start is not None:
        ranges.append((start, len(lines)))
    return ranges


def offered_codecs(sdp: str, kind: str) -> list[str]:
    """The ``rtpmap`` encodings (``"opus/48000/2"``, ...) of the first ``kind`` section."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    for start, end in _sections(lines, kind)[:1]:
        return [m.group(2) for line in lines[start:end] if (m := _RTPMAP.match(line))]
    return []


def filter_codec(sdp: str, kind: str, codec: str | None) -> str:
    """Keep only ``codec`` (prefix match on rtpmap) and its RTX in every ``kind`` section.

    ``None``, ``""`` and ``"default"`` leave the SDP unchanged. Raises
    :class:`CodecNotOfferedError` when a section would end up without any payload.
    """
    if not codec or codec == "default":
        return sdp
    newline = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.replace("\r\n", "\n").split("\n")
    drop: set[int] = set()
    rewritten: dict[int, str] = {}
    for start, end in _sections(lines, kind):
        section = lines[start:end]
        keep: list[str] = []
        for line in section:
            match = _RTPMAP.match(line)
            if match and match.group(2).startswith(codec):
                keep.append(match.group(1))
        if not keep:
            available = ", ".join(m.group(2) for line in section if (m := _RTPMAP.match(line)))
            raise CodecNotOfferedError(f"{kind} codec {codec!r} not in the offer (offered: {available or 'none'})")
        for line in section:
            match = _APT.match(line)
            if match and match.group(2) in keep and match.group(1) not in keep:
                keep.append(match.group(1))
        for offset, line in enumerate(section):
            match = _PT_LINE.match(line)
            if match and match.group(1) not in keep:
                drop.add(start + offset)
        head = lines[start].split(" ")
        rewritten[start] = " ".join([*head[:3], *[pt for pt in head[3:] if pt in keep]])
    out = [rewritten.get(i, line) for i, line in enumerate(lines) if i not in drop]
    return newline.join(out)


def strip_candidates(sdp: str) -> str:
    """Remove ``a=candidate`` and ``a=end-of-candidates`` lines (the offer of a trickling client)."""
    newline = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.replace("\r\n", "\n").split("\n")
    kept = [line for line in lines if not line.startswith(("a=candidate:", "a=end-of-candidates"))]
    return newline.join(kept)


def candidates_by_section(sdp: str) -> list[tuple[str, str | None, int]]:
    """Every ``a=candidate`` line as ``(candidate text, mid, m-line index)`` in SDP order."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    mids: list[str | None] = []
    for line in lines:
        if line.startswith("m="):
            mids.append(None)
        elif line.startswith("a=mid:") and mids:
            mids[-1] = line[len("a=mid:") :].strip()
    result: list[tuple[str, str | None, int]] = []
    index = -1
    for line in lines:
        if line.startswith("m="):
            index += 1
        elif line.startswith("a=candidate:") and index >= 0:
            result.append((line[2:], mids[index], index))
    return result


def negotiated_codecs(sdp: str, kind: str) -> list[str]:
    """Codec names (``"PCMU"``, ``"opus"``) an answer accepted for the first ``kind`` section."""
    names = [enc.split("/", 1)[0] for enc in offered_codecs(sdp, kind)]
    return list(dict.fromkeys(n for n in names if n.lower() != "rtx"))
