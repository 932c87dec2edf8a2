"""ICE helpers: server lists, per-connection host addresses, 1:1 NAT rewriting, trickled candidates.

aioice gathers host candidates from every interface except loopback, through the module
function ``aioice.ice.get_host_addresses`` called inside ``Connection.gather_candidates``, and
aiortc exposes no option for it. The narrowest per-connection seam is the aioice ``Connection``
*instance* owned by each of a peer connection's ``RTCIceGatherer``s: ``gather_candidates`` calls
``self.get_component_candidates(component=..., addresses=...)``, so :func:`restrict_host_addresses`
shadows that bound method on the instance and swaps in the configured addresses. Nothing
module-level is patched, so connections never see each other's settings.
"""

from __future__ import annotations

import ipaddress
import re
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aioice import Candidate
from aioice.ice import TransportPolicy
from aiortc import RTCIceCandidate, RTCIceServer, RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

from runner.webrtc.errors import CandidateLimitError, clip


class InvalidCandidateError(ValueError):
    """A trickled ICE candidate that cannot be parsed."""


@dataclass
class IceServer:
    """A STUN/TURN server as the browser's ``RTCIceServer``: ``urls`` plus optional credentials."""

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``iceConfig.iceServers`` (``urls`` always a list, no empty credentials)."""
        urls = [self.urls] if isinstance(self.urls, str) else list(self.urls)
        out: dict[str, Any] = {"urls": urls}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out

    def to_rtc(self) -> RTCIceServer:
        """The aiortc equivalent."""
        return RTCIceServer(urls=self.urls, username=self.username, credential=self.credential)


IceServersArg = Sequence[str] | Sequence[IceServer] | None


def normalize_ice_servers(servers: IceServersArg) -> list[IceServer]:
    """Accept a list of URL strings or of :class:`IceServer` (not both); None means none at all."""
    if servers is None:
        return []
    if isinstance(servers, str):
        raise TypeError("ice_servers must be a list, not a single string")
    items = list(servers)
    if all(isinstance(s, str) for s in items):
        return [IceServer(urls=s) for s in items]  # type: ignore[arg-type]
    if all(isinstance(s, IceServer) for s in items):
        return list(items)  # type: ignore[arg-type]
    raise TypeError("ice_servers must be all URL strings or all IceServer objects, not a mix")


@dataclass
class HostAddressRestriction:
    """Replaces the gathered host addresses of one aioice connection."""

    addresses: list[str]
    original: Callable[..., Awaitable[list[Candidate]]] = field(repr=False)

    async def __call__(self, component: int, addresses: list[str], **kwargs: Any) -> list[Candidate]:
        """Gather for ``component`` from our addresses instead of aioice's interface scan."""
        return await self.original(component=component, addresses=list(self.addresses), **kwargs)


def validate_host_addresses(addresses: Sequence[str]) -> list[str]:
    """Check every entry is an IP literal; return them as a list."""
    result = []
    for addr in addresses:
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise ValueError(f"host address {addr!r} is not an IP address") from None
        result.append(addr)
    return result


def restrict_host_addresses(pc: RTCPeerConnection, addresses: Sequence[str]) -> int:
    """Make every not-yet-gathered ICE gatherer of ``pc`` use only ``addresses`` (loopback allowed).

    Call after the transports exist (after ``setRemoteDescription`` / ``addTransceiver``) and
    before ``setLocalDescription``. Returns how many gatherers were restricted.
    """
    count = 0
    for gatherer in _ice_gatherers(pc):
        if gatherer.state != "new":
            continue
        conn = gatherer._connection
        if isinstance(conn.get_component_candidates, HostAddressRestriction):
            conn.get_component_candidates.addresses = list(addresses)
        elif conn._transport_policy == TransportPolicy.ALL:
            conn.get_component_candidates = HostAddressRestriction(list(addresses), conn.get_component_candidates)
        count += 1
    return count


def _ice_gatherers(pc: RTCPeerConnection) -> list[Any]:
    seen: list[Any] = []
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        gatherer = dtls.transport.iceGatherer
        if all(gatherer is not g for g in seen):
            seen.append(gatherer)
    return seen


_CANDIDATE_LINE = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host\b.*)$")


def rewrite_host_candidates(sdp: str, advertised_address: str) -> str:
    """Advertise ``advertised_address`` for every host candidate (1:1 NAT); ``c=`` lines follow."""
    local: set[str] = set()
    lines = sdp.split("\r\n")
    for i, line in enumerate(lines):
        match = _CANDIDATE_LINE.match(line)
        if match:
            local.add(match.group(2))
            lines[i] = f"{match.group(1)}{advertised_address}{match.group(3)}"
    version = "IP6" if ":" in advertised_address else "IP4"
    for i, line in enumerate(lines):
        if line.startswith("c=IN ") and line.split()[-1] in local:
            lines[i] = f"c=IN {version} {advertised_address}"
    return "\r\n".join(lines)


def parse_candidate(item: Any) -> RTCIceCandidate | None:
    """Parse one PATCH entry ``{candidate, sdp_mid, sdp_mline_index}``; None = end-of-candidates.

    Raises :class:`InvalidCandidateError` with a readable reason for anything malformed, and
    nothing else, whatever ``item`` is.
    """
    if not isinstance(item, dict):
        raise InvalidCandidateError(f"candidate entry must be an object, got {type(item).__name__}")
    text = item.get("candidate")
    mid = item.get("sdp_mid", item.get("sdpMid"))
    index = item.get("sdp_mline_index", item.get("sdpMLineIndex"))
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise InvalidCandidateError("'candidate' must be a string")
    if mid is not None and not isinstance(mid, str):
        raise InvalidCandidateError("'sdp_mid' must be a string or null")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 1024):
        raise InvalidCandidateError("'sdp_mline_index' must be an integer from 0 to 1023 or null")
    if mid is None and index is None:
        raise InvalidCandidateError("a candidate needs 'sdp_mid' or 'sdp_mline_index'")
    body = text.strip()
    if body.startswith("a="):
        body = body[2:]
    if body.startswith("candidate:"):
        body = body[len("candidate:") :]
    candidate = parse_candidate_sdp(body)
    candidate.sdpMid = mid
    candidate.sdpMLineIndex = index
    return candidate


def parse_candidate_sdp(text: str) -> RTCIceCandidate:
    """Parse the value of an ``a=candidate:`` line; :class:`InvalidCandidateError` if it is unusable.

    Beyond aiortc's parser: priority, port and component within their RFC 8445 ranges, UDP or
    TCP only, and an address that is an IP literal or an mDNS ``.local`` name. Any other host
    name would make the ICE agent resolve it through DNS, on behalf of whoever sent it.
    """
    bits = text.split()
    shown = clip(text)
    if len(bits) < 8 or bits[6] != "typ":
        raise InvalidCandidateError(f"cannot parse ICE candidate {shown!r}")
    if not all(bit.isascii() for bit in bits[:8]) or not bits[1].isdigit() or not bits[3].isdigit():
        raise InvalidCandidateError(f"cannot parse ICE candidate {shown!r}: component and priority must be numbers")
    if not bits[5].isdigit() or len(bits[5]) > 5:
        raise InvalidCandidateError(f"cannot parse ICE candidate {shown!r}: bad port {clip(bits[5])!r}")
    try:
        candidate = candidate_from_sdp(text)
    except (AssertionError, ValueError, IndexError) as exc:
        raise InvalidCandidateError(f"cannot parse ICE candidate {shown!r}: {clip(str(exc))}") from exc
    if candidate.protocol.lower() not in ("udp", "tcp"):
        raise InvalidCandidateError(f"unsupported candidate transport {clip(candidate.protocol)!r}")
    if not 0 <= candidate.port <= 65535 or not 1 <= candidate.component <= 256:
        raise InvalidCandidateError(f"candidate port/component out of range in {shown!r}")
    if not 0 <= candidate.priority < 2**32:
        raise InvalidCandidateError(f"candidate priority out of range in {shown!r}")
    if not _usable_address(candidate.ip):
        raise InvalidCandidateError(
            f"candidate address {clip(candidate.ip)!r} is neither an IP address nor an mDNS .local name"
        )
    return candidate


_MDNS_NAME = re.compile(r"^[a-zA-Z0-9-]{1,63}\.local$")


def _usable_address(host: str) -> bool:
    if _MDNS_NAME.match(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def candidate_key(candidate: RTCIceCandidate) -> tuple[int, str, str, int]:
    """What makes two remote candidates the same to the ICE agent: component and transport address."""
    return (candidate.component, candidate.protocol.lower(), candidate.ip, candidate.port)


def inline_candidate_keys(sdp: str) -> set[tuple[int, str, str, int]]:
    """Keys of the usable ``a=candidate`` lines of an SDP (unusable ones are skipped)."""
    keys = set()
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            try:
                keys.add(candidate_key(parse_candidate_sdp(line[len("a=candidate:") :])))
            except InvalidCandidateError:
                continue
    return keys


class CandidateBudget:
    """Distinct remote candidates one peer connection received (inline plus trickled), at most ``limit``.

    The budget follows the peer connection it was last used with: a ``restart_pc`` (a new pc)
    starts from zero. Only a weak reference to the pc is kept.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._owner: weakref.ref[Any] | None = None
        self._seen: set[tuple[int, str, str, int]] = set()

    def admit(self, owner: Any, remote_sdp: str | None, candidates: Sequence[RTCIceCandidate]) -> None:
        """Count ``candidates`` for ``owner`` (``remote_sdp``'s inline ones included).

        Raises :class:`CandidateLimitError`, counting nothing, when the batch would pass the limit.
        """
        if self._owner is None or self._owner() is not owner:
            self._owner = weakref.ref(owner)
            self._seen = set()
        known = self._seen | (inline_candidate_keys(remote_sdp) if remote_sdp else set())
        fresh = {candidate_key(c) for c in candidates} - known
        if len(known) + len(fresh) > self.limit:
            raise CandidateLimitError(
                f"peer connection would have {len(known) + len(fresh)} remote ICE candidates; at most {self.limit}"
            )
        self._seen = known | fresh
