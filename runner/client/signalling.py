"""HTTP signalling for the client: connection parameters, ``/start``, offer POST, candidate PATCH.

Connection parameters are normalised the way the JS transport does it: snake_case keys become
camelCase; ``webrtcRequestParams`` (``{endpoint, headers, requestData, timeout}``) wins over
the deprecated ``webrtcUrl`` / ``connectionUrl`` strings; with none of those but a
``sessionId`` (a ``/start`` answer) the offer URL is the start URL with its first ``/start``
replaced by ``/sessions/<id>/api/offer`` (or ``offer_url_template`` with ``:sessionId``).
``iceConfig.iceServers`` replaces the client's ICE servers for that connection.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import aiohttp

DEFAULT_TIMEOUT_SECS = 15.0


class SignallingError(Exception):
    """Any failure of an HTTP signalling call."""


class HttpStatusError(SignallingError):
    """The server answered with a non-2xx status."""

    def __init__(self, status: int, url: str, detail: str) -> None:
        super().__init__(f"HTTP {status} from {url}: {detail}" if detail else f"HTTP {status} from {url}")
        self.status = status
        self.url = url
        self.detail = detail

    @property
    def fatal(self) -> bool:
        """A 4xx is a deterministic refusal: the client must not retry."""
        return 400 <= self.status < 500


class StartBotError(HttpStatusError):
    """The start endpoint refused (its ``info`` or ``detail`` is the message)."""


@dataclass
class OfferEndpoint:
    """Where offers are POSTed and candidates PATCHed (an ``APIRequest``)."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    request_data: Any = None
    timeout: float | None = None


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def normalize_keys(params: dict[str, Any]) -> dict[str, Any]:
    """snake_case top-level keys to camelCase (``webrtc_url`` -> ``webrtcUrl``)."""
    return {_camel(k): v for k, v in params.items()}


def _timeout_secs(value: Any) -> float | None:
    """``timeout`` in an APIRequest is milliseconds in JS; accept seconds when small."""
    if value is None:
        return None
    number = float(value)
    return number / 1000.0 if number > 300 else number


def _api_request(raw: Any, base: str | None) -> OfferEndpoint:
    if isinstance(raw, str):
        return OfferEndpoint(url=_absolute(raw, base))
    if not isinstance(raw, dict) or not isinstance(raw.get("endpoint"), str):
        raise SignallingError("webrtcRequestParams needs a string 'endpoint'")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict):
        raise SignallingError("webrtcRequestParams.headers must be an object")
    return OfferEndpoint(
        url=_absolute(raw["endpoint"], base),
        headers={str(k): str(v) for k, v in headers.items()},
        request_data=raw.get("requestData", raw.get("request_data")),
        timeout=_timeout_secs(raw.get("timeout")),
    )


def _absolute(url: str, base: str | None) -> str:
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        return url
    if base is None:
        raise SignallingError(f"relative offer URL {url!r} without a base URL")
    return urljoin(base, url)


@dataclass
class ResolvedParams:
    """The outcome of :func:`resolve_connection_params`."""

    endpoint: OfferEndpoint
    ice_servers: list[dict[str, Any]] | None = None
    session_id: str | None = None


def resolve_connection_params(
    params: str | dict[str, Any],
    *,
    start_url: str | None = None,
    start_headers: dict[str, str] | None = None,
    offer_url_template: str | None = None,
) -> ResolvedParams:
    """Turn ``connect()`` parameters (or a ``/start`` answer) into an offer endpoint."""
    if isinstance(params, str):
        return ResolvedParams(OfferEndpoint(url=_absolute(params, start_url)))
    if not isinstance(params, dict):
        raise SignallingError("connection parameters must be a URL or an object")
    norm = normalize_keys(params)
    ice: list[dict[str, Any]] | None = None
    ice_config = norm.get("iceConfig")
    if isinstance(ice_config, dict):
        servers = ice_config.get("iceServers", ice_config.get("ice_servers"))
        if isinstance(servers, list):
            ice = [s for s in servers if isinstance(s, dict)]
    session_id = norm.get("sessionId") if isinstance(norm.get("sessionId"), str) else None
    if norm.get("webrtcRequestParams") is not None:
        endpoint = _api_request(norm["webrtcRequestParams"], start_url)
    elif isinstance(norm.get("webrtcUrl") or norm.get("connectionUrl"), str):
        endpoint = OfferEndpoint(url=_absolute(norm.get("webrtcUrl") or norm["connectionUrl"], start_url))
    elif session_id is not None:
        if offer_url_template:
            url = offer_url_template.replace(":sessionId", session_id)
        elif start_url and "/start" in start_url:
            url = start_url.replace("/start", f"/sessions/{session_id}/api/offer", 1)
        else:
            raise SignallingError("a sessionId needs the start URL or an offer URL template")
        endpoint = OfferEndpoint(url=_absolute(url, start_url), headers=dict(start_headers or {}))
    else:
        raise SignallingError("no webrtcRequestParams, webrtcUrl or sessionId in the connection parameters")
    return ResolvedParams(endpoint=endpoint, ice_servers=ice, session_id=session_id)


def _detail(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    if isinstance(body, dict):
        for key in ("info", "detail", "error", "message"):
            if body.get(key):
                return str(body[key])[:300]
    return text.strip()[:300]


async def _request_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any,
    headers: dict[str, str],
    timeout_secs: float | None,
    error_cls: type[HttpStatusError] = HttpStatusError,
) -> Any:
    all_headers = {"Content-Type": "application/json", **headers}
    client_timeout = aiohttp.ClientTimeout(total=timeout_secs or DEFAULT_TIMEOUT_SECS)
    try:
        async with session.request(
            method, url, data=json.dumps(body), headers=all_headers, timeout=client_timeout
        ) as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise error_cls(resp.status, url, _detail(text))
            if not text:
                return None
            try:
                return json.loads(text)
            except ValueError:
                raise SignallingError(f"{method} {url}: answer is not JSON: {text[:200]!r}") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SignallingError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc


async def start_bot(
    session: aiohttp.ClientSession,
    url: str,
    request_data: Any = None,
    headers: dict[str, str] | None = None,
    timeout_secs: float | None = None,
) -> dict[str, Any]:
    """POST ``request_data`` to a start endpoint; the JSON answer (non-2xx -> :class:`StartBotError`)."""
    answer = await _request_json(
        session, "POST", url, {} if request_data is None else request_data, headers or {}, timeout_secs, StartBotError
    )
    if not isinstance(answer, dict):
        raise SignallingError(f"start endpoint {url} did not answer a JSON object")
    return answer


async def post_offer(
    session: aiohttp.ClientSession,
    endpoint: OfferEndpoint,
    sdp: str,
    pc_id: str | None,
    restart_pc: bool,
) -> dict[str, Any]:
    """POST ``{sdp, type, pc_id, restart_pc[, requestData]}``; returns the ``{sdp, type, pc_id}`` answer."""
    body: dict[str, Any] = {"sdp": sdp, "type": "offer", "pc_id": pc_id, "restart_pc": restart_pc}
    if endpoint.request_data is not None:
        body["requestData"] = endpoint.request_data
    answer = await _request_json(session, "POST", endpoint.url, body, endpoint.headers, endpoint.timeout)
    if not isinstance(answer, dict) or not isinstance(answer.get("sdp"), str):
        raise SignallingError(f"offer answer from {endpoint.url} has no 'sdp'")
    return answer


async def patch_candidates(
    session: aiohttp.ClientSession,
    endpoint: OfferEndpoint,
    pc_id: str,
    candidates: list[dict[str, Any]],
) -> None:
    """PATCH ``{pc_id, candidates}`` (the answer is ignored, as the JS client does)."""
    body = {"pc_id": pc_id, "candidates": candidates}
    await _request_json(session, "PATCH", endpoint.url, body, endpoint.headers, endpoint.timeout)
