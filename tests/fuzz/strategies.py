"""Hypothesis strategies for hostile clients: JSON bodies, SDP mutations, ICE candidates, YAML specs.

Shared by the suite (tests/fuzz, short profile) and ``bench/fuzz.py`` (long profile). Every
candidate address that could make the server send packets is forced onto loopback by
:func:`loopback_only` / :func:`loopback_candidate`: fuzzing must never reach a real network.

Seed offers: one made by aiortc at run time (``tests.fuzz.properties.aiortc_offer``) and one
captured from Debian's Chromium 156 (headless, fake devices; mic and camera transceivers
sendrecv plus the ``chat`` data channel, as the JS client builds them; no candidates, since
the client trickles them) in ``tests/data/chromium_offer.sdp``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

DATA = Path(__file__).resolve().parents[1] / "data"
PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
CHROMIUM_OFFER = (DATA / "chromium_offer.sdp").read_bytes().decode()  # bytes: keep its CRLFs

_MDNS = re.compile(r"^[a-zA-Z0-9-]{1,63}\.local$")


# -- JSON -------------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Arbitrary JSON-shaped values (lists and objects of scalars)."""
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
        max_leaves=max_leaves,
    )


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    """``[[[...]]]`` / ``{"a":{"a":...}}`` from a few levels to far past any parser's stack."""
    depth = draw(st.one_of(st.integers(1, 64), st.integers(64, 100_000)))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"sdp":[', b"]}")]))
    closed = draw(st.booleans())
    return opener * depth + (closer * depth if closed else b"")


def dumps(value: Any) -> bytes:
    """JSON bytes as a client would send them (NaN/Infinity included, like Python's encoder)."""
    return json.dumps(value).encode()


def body_bytes(fields: st.SearchStrategy[dict[str, Any]] | None = None) -> st.SearchStrategy[bytes]:
    """A request body: plausible objects, any JSON, deep nesting, huge strings, binary junk."""
    options: list[st.SearchStrategy[bytes]] = [
        json_values().map(dumps),
        deep_nesting(),
        st.binary(max_size=200),
        st.integers(1_000, 200_000).map(lambda n: dumps({"sdp": "v=0\r\n" + "a" * n, "type": "offer"})),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ]
    if fields is not None:
        options.insert(0, fields.map(dumps))
        options.insert(0, fields.map(dumps).flatmap(lambda b: st.integers(1, max(1, len(b) - 1)).map(lambda n: b[:n])))
    return st.one_of(*options)


# -- SDP --------------------------------------------------------------------------------------------

#: Mutated offers stay about within the server's default body limit (a flood fills it).
MAX_SDP_CHARS = 250_000

EXTRA_LINES = [
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "m=text 9 RTP/AVP 98",
    "m=audio 99999999 UDP/TLS/RTP/SAVPF 111",
    "m=audio 9 UDP/TLS/RTP/SAVPF 300",
    "a=rtpmap:111 opus/48000/2",
    "a=rtpmap:96 VP8",
    "a=fmtp:200 apt=1",
    "a=fingerprint:sha-256",
    "a=fingerprint:md5 00",
    "a=setup:bogus",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=candidate:1 1 udp 2122260223 127.0.0.1 9 typ host",
    "a=candidate:1 1 udp x 127.0.0.1 9 typ host",
    "a=candidate:garbage",
    "a=ssrc:1 cname:x",
    "a=ssrc:abc",
    "a=extmap:x y",
    "a=rtcp:notaport",
    "a=max-message-size:-1",
    "a=sctp-port:x",
    "a=mid:",
    "a=group:BUNDLE 0 1 2 3 4 5",
    "c=IN IP4",
    "c=IN IP9 1.2.3.4",
    "v=1",
    "",
    "\x00",
]


@st.composite
def mutated_sdp(draw: st.DrawFn, seeds: list[str]) -> str:
    """A real offer with 1-4 mutations: drops, duplications, swaps, inserts, truncation, byte flips,
    line-ending changes, or a flood of copied m-sections."""
    lines = draw(st.sampled_from(seeds)).split("\r\n")
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3, 4]))):
        op = draw(st.sampled_from(["drop", "dup", "swap", "insert", "truncate", "flip", "flood", "endings"]))
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            lines.insert(i, draw(st.one_of(st.sampled_from(EXTRA_LINES), st.text(max_size=60))))
        elif op == "truncate":
            text = "\r\n".join(lines)
            lines = text[: draw(st.integers(len(text) // 2, len(text)))].split("\r\n")
        elif op == "flip":
            line = lines[i]
            if line:
                at = draw(st.integers(0, len(line) - 1))
                lines[i] = line[:at] + draw(st.characters()) + line[at + 1 :]
        elif op == "flood":
            starts = [n for n, line in enumerate(lines) if line.startswith("m=")] or [0]
            start = draw(st.sampled_from(starts))
            end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("m=")), len(lines))
            section = lines[start:end]
            room = (MAX_SDP_CHARS - sum(map(len, lines))) // max(1, sum(map(len, section)))
            lines = lines + section * draw(st.integers(min(1, room), max(0, min(300, room))))
        else:
            sep = draw(st.sampled_from(["\n", "\r", "\x0b", "\u2028", "\r\r\n"]))
            return loopback_only(sep.join(lines))
    return loopback_only("\r\n".join(lines))


def loopback_only(sdp: str) -> str:
    """Point every ``a=candidate`` whose address the server could use at 127.0.0.1."""
    out = []
    for line in sdp.splitlines(keepends=True):
        if line.startswith("a=candidate:"):
            body = line.rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
            line = "a=candidate:" + loopback_candidate(body[len("a=candidate:") :]) + line[len(body) :]
        out.append(line)
    return "".join(out)


def loopback_candidate(text: str) -> str:
    """``text`` with its address replaced by 127.0.0.1 if that address is routable (or mDNS)."""
    bits = text.split()
    if len(bits) < 5:
        return text
    host = bits[4]
    if _MDNS.match(host):
        return _replace_field(text, 4, "127.0.0.1")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return text  # not an address: the server must refuse it
    return text if address.is_loopback else _replace_field(text, 4, "127.0.0.1")


def _replace_field(text: str, index: int, value: str) -> str:
    parts = re.split(r"(\s+)", text.strip())
    fields = parts[::2]
    fields[index] = value
    parts[::2] = fields
    return "".join(parts)


def offer_bodies(sdps: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Offer request objects: mostly well-typed with a fuzzed SDP, sometimes wrong types."""
    return st.fixed_dictionaries(
        {
            "sdp": st.one_of(sdps, sdps, sdps, json_values(5)),
            "type": st.one_of(st.just("offer"), st.just("offer"), st.just("offer"), json_values(3)),
        },
        optional={
            "pc_id": st.one_of(st.none(), st.text(max_size=80), json_values(3)),
            "restart_pc": st.one_of(st.booleans(), json_values(3)),
            "request_data": json_values(10),
            "requestData": json_values(10),
        },
    )


# -- candidates -------------------------------------------------------------------------------------

GOOD_CANDIDATES = [
    "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
    "candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active",
    "candidate:3 1 udp 1686052607 127.0.0.1 50001 typ srflx raddr 127.0.0.1 rport 50000",
    "candidate:4 1 udp 41885439 ::1 3478 typ relay raddr 127.0.0.1 rport 50002",
    "a=candidate:5 2 UDP 1 127.0.0.2 50003 typ host generation 0 ufrag abcd network-id 1",
]


@st.composite
def candidate_texts(draw: st.DrawFn) -> str:
    """Real candidate lines with token-level mutations, or arbitrary text; always loopback."""
    if draw(st.integers(0, 3)) == 0:
        return loopback_candidate(draw(st.text(max_size=120)))
    tokens = draw(st.sampled_from(GOOD_CANDIDATES)).split(" ")
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
        i = draw(st.integers(0, len(tokens) - 1))
        choice = draw(st.sampled_from(["drop", "replace", "dup"]))
        if choice == "drop" and len(tokens) > 1:
            del tokens[i]
        elif choice == "dup":
            tokens.insert(i, tokens[i])
        else:
            tokens[i] = draw(
                st.one_of(
                    st.sampled_from(["-1", "99999999999", "4294967296", "0", "x", "typ", "udp", "sctp", "١٢", "1_0"]),
                    st.sampled_from(
                        ["resolver.example", "deadbeef.local", "256.1.1.1", "::ffff:1.2.3.4", "fe80::1%lo"]
                    ),
                    st.text(max_size=12),
                )
            )
    return loopback_candidate(" ".join(tokens))


def candidate_entries() -> st.SearchStrategy[Any]:
    """PATCH ``candidates`` items: well-shaped with fuzzed fields, or any JSON."""
    shaped = st.fixed_dictionaries(
        {"candidate": st.one_of(candidate_texts(), candidate_texts(), candidate_texts(), st.just(""), json_values(3))},
        optional={
            "sdp_mid": st.one_of(st.sampled_from(["0", "1", "2", "99"]), st.sampled_from(["0", "1"]), json_values(2)),
            "sdp_mline_index": st.one_of(st.integers(-2, 2000), st.none(), json_values(2)),
            "sdpMid": st.sampled_from(["0", "1"]),
        },
    )
    return st.one_of(shaped, shaped, shaped, json_values(4))


def patch_bodies(pc_ids: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """PATCH request objects aimed at ``pc_ids`` (real ones and junk)."""
    return st.fixed_dictionaries(
        {"pc_id": pc_ids, "candidates": st.one_of(st.lists(candidate_entries(), max_size=3), json_values(3))},
        optional={"extra": json_values(3)},
    )


def start_bodies() -> st.SearchStrategy[dict[str, Any]]:
    """``/start`` request objects."""
    return st.fixed_dictionaries(
        {},
        optional={
            "transport": st.one_of(st.just("webrtc"), json_values(2)),
            "enableDefaultIceServers": json_values(2),
            "body": json_values(10),
        },
    )


# -- YAML -------------------------------------------------------------------------------------------

SEED_SPECS = [p.read_text() for p in sorted(PIPELINES.glob("*.yaml"))]


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    """Spec texts: real specs with line mutations, YAML-looking junk, or any text."""
    kind = draw(st.sampled_from(["mutated", "mutated", "junk", "text", "dumped"]))
    if kind == "text":
        return draw(st.text(max_size=300))
    if kind == "dumped":
        import yaml

        return yaml.safe_dump(draw(json_values(15)), allow_unicode=True)
    if kind == "junk":
        pieces = [
            ":",
            "- ",
            "  ",
            "\n",
            "{",
            "}",
            "[",
            "]",
            "&a",
            "*a",
            "!!python/object:os.system",
            "<<: *a",
            "version: 1",
            "processors:",
            "${X}",
            "${X:?boom}",
            "'",
            '"',
            "\t",
            "%YAML 1.1",
            "---",
            "...",
        ]
        return "".join(draw(st.lists(st.sampled_from(pieces), max_size=60)))
    lines = draw(st.sampled_from(SEED_SPECS)).split("\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        op = draw(st.sampled_from(["drop", "dup", "indent", "dedent", "flip", "insert"]))
        if not lines:
            lines = [""]
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i].lstrip()
        elif op == "flip" and lines[i]:
            at = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:at] + draw(st.characters()) + lines[i][at + 1 :]
        else:
            lines.insert(i, draw(st.text(max_size=40)))
    return "\n".join(lines)


# -- raw HTTP framing -------------------------------------------------------------------------------


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    """Whole HTTP/1.1 requests with fuzzed request lines, headers and framing (chunked, lengths).

    Bodies carry no SDP and no candidates, and flips only touch the head, so no byte change
    can turn a loopback address into a routable one.
    """
    method = draw(st.sampled_from(["POST", "PATCH", "GET", "OPTIONS", "PUT", "P\x00ST", "post", ""]))
    path = draw(st.sampled_from(["/api/offer", "/start", "/sessions/x/api/offer", "/status", "/%zz", "*", "/" * 300]))
    body = draw(st.one_of(start_bodies().map(dumps), json_values(8).map(dumps), deep_nesting(), st.binary(max_size=64)))
    headers = ["Host: 127.0.0.1", "Content-Type: application/json"]
    framing = draw(st.sampled_from(["length", "wrong-length", "chunked", "bad-chunked", "both", "none"]))
    if framing == "length":
        headers.append(f"Content-Length: {len(body)}")
    elif framing == "wrong-length":
        headers.append(f"Content-Length: {draw(st.sampled_from(['-1', '0', '1', 'x', '99999999999999999999', ' 5']))}")
    elif framing in ("chunked", "bad-chunked", "both"):
        headers.append("Transfer-Encoding: chunked")
        if framing == "both":
            headers.append(f"Content-Length: {len(body)}")
        bad_sizes = st.sampled_from(["zz", "-1", "ffffffffffffffff", ""])
        size = f"{len(body):x}" if framing != "bad-chunked" else draw(bad_sizes)
        body = f"{size}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    headers += draw(
        st.lists(
            st.sampled_from(
                [
                    "Connection: keep-alive",
                    "Expect: 100-continue",
                    "X: " + "y" * 9000,
                    "Bad Header",
                    ": empty",
                    "Content-Encoding: gzip",
                ]
            ),
            max_size=2,
        )
    )
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(h + "\r\n" for h in headers) + "Connection: close\r\n\r\n"
    raw_head = head.encode("utf-8", "surrogatepass")
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        at = draw(st.integers(0, len(raw_head) - 1))
        raw_head = raw_head[:at] + bytes([draw(st.integers(0, 255))]) + raw_head[at + 1 :]
    return raw_head + body
