"""The HTTP edge's refusals, and the one table that maps the core's errors to a status.

    Exception
    └── RequestRefused            answered as ``{"detail": message}`` with ``status``
        ├── BadRequest            400  the client sent something we cannot use
        ├── NotFound              404  unknown session or peer connection
        ├── Conflict              409  the session is in a state that forbids this request
        ├── BodyTooLarge          413  over ``limits.max_body_bytes``
        ├── TooManyRequests       429  over a per-session rate (``Retry-After``)
        ├── ServerFull            503  every session slot taken (``Retry-After``)
        └── ApiError              any status, for the rare one-off

Errors raised by the WebRTC layer or the JSON parser (``SignalingError``, ``OfferRejected``,
``CandidateLimitError``, ``InvalidCandidateError``, ``JsonLimitError``) are not wrapped at each
raise site: :func:`refusal_for` turns them into a refusal in the error middleware.
"""

from __future__ import annotations

import math
from typing import ClassVar

from runner.limits import JsonLimitError
from runner.webrtc.errors import CandidateLimitError, SignalingError
from runner.webrtc.ice import InvalidCandidateError


class RequestRefused(Exception):
    """A request answered with a 4xx/503 and a reason; never a traceback."""

    status: ClassVar[int] = 400

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}

    @property
    def code(self) -> int:
        """The HTTP status of this refusal."""
        return self.status


class BadRequest(RequestRefused):
    """400: a body, field, offer or candidate we cannot use."""


class NotFound(RequestRefused):
    """404: unknown or ended session / peer connection."""

    status = 404


class Conflict(RequestRefused):
    """409: e.g. a second first-offer on a session that already has a connection."""

    status = 409


class BodyTooLarge(RequestRefused):
    """413: a body over ``limits.max_body_bytes``."""

    status = 413


class _RetryLater(RequestRefused):
    def __init__(self, detail: str, retry_after_secs: float) -> None:
        # Retry-After is whole seconds; round up so a client that obeys it is never early
        super().__init__(detail, {"Retry-After": str(max(1, math.ceil(retry_after_secs)))})
        self.retry_after_secs = retry_after_secs


class TooManyRequests(_RetryLater):
    """429: a per-session rate passed; the session itself is untouched."""

    status = 429


class ServerFull(_RetryLater):
    """503, not 429: a full server is a temporary condition that is not this client's fault.

    The JS client treats any 4xx as a final refusal but retries 5xx, and a slot may well free up.
    """

    status = 503


class ApiError(RequestRefused):
    """A refusal with an explicit status."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers)
        self._status = status

    @property
    def code(self) -> int:
        """The HTTP status given at construction."""
        return self._status


# Checked in order, so subclasses come before their bases. Too many candidates is a 400, not a
# 429: the per-pc budget never refills, so "retry later" would be a lie, and the JS client
# ignores PATCH answers and never retries anyway; the status is for other clients and the logs.
_STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (CandidateLimitError, 400),
    (SignalingError, 400),
    (InvalidCandidateError, 400),
    (JsonLimitError, 400),
)


def refusal_for(exc: Exception) -> RequestRefused | None:
    """The refusal a core error stands for, or None if it is a bug (answered 500 and logged)."""
    if isinstance(exc, RequestRefused):
        return exc
    for kind, status in _STATUS_OF:
        if isinstance(exc, kind):
            return ApiError(status, str(exc))
    return None


__all__ = [
    "ApiError",
    "BadRequest",
    "BodyTooLarge",
    "Conflict",
    "NotFound",
    "RequestRefused",
    "ServerFull",
    "TooManyRequests",
    "refusal_for",
]
