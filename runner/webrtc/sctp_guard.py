"""A guard on aiortc's SCTP data-channel receive path: client bytes must not end the association.

aiortc decodes a text (PPID 51) message with a strict ``bytes.decode("utf8")`` and asserts on
protocol violations (a second DCEP open for a stream) inside the task that runs DTLS; either
exception ends the whole peer connection before any handler of ours runs. This is the data
channel's one private seam: :func:`guard_receive` wraps the transport's
``_data_channel_receive`` so a text message that is not UTF-8 is delivered as binary (the link
counts it as ``binary_not_utf8``) and any other failure is reported to ``on_failure`` instead of
propagating. :func:`missing_private_names` lets a start-up check name what is gone.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCSctpTransport
from aiortc import rtcsctptransport as _sctp

_RECEIVE = "_data_channel_receive"
_MARK = "_pipeline_run_receive_guarded"

#: The private aiortc names this module relies on (for a start-up check).
PRIVATE_NAMES: tuple[str, ...] = (
    f"aiortc.rtcsctptransport.RTCSctpTransport.{_RECEIVE}",
    "aiortc.rtcsctptransport.WEBRTC_STRING",
    "aiortc.rtcsctptransport.WEBRTC_BINARY",
)


def missing_private_names() -> list[str]:
    """Which of :data:`PRIVATE_NAMES` the installed aiortc lacks (empty when all are there)."""
    missing = []
    if not inspect.iscoroutinefunction(getattr(RTCSctpTransport, _RECEIVE, None)):
        missing.append(PRIVATE_NAMES[0])
    for name, full in (("WEBRTC_STRING", PRIVATE_NAMES[1]), ("WEBRTC_BINARY", PRIVATE_NAMES[2])):
        if not isinstance(getattr(_sctp, name, None), int):
            missing.append(full)
    return missing


def guard_receive(transport: Any, on_failure: Callable[[Exception], None]) -> bool:
    """Wrap ``transport``'s receive path once; False (nothing changed) if aiortc lacks the seam."""
    if getattr(transport, _MARK, False):
        return True
    original: Callable[[int, int, bytes], Awaitable[None]] | None = getattr(transport, _RECEIVE, None)
    if original is None or missing_private_names():
        return False
    text_ppid: int = _sctp.WEBRTC_STRING
    binary_ppid: int = _sctp.WEBRTC_BINARY

    async def guarded(stream_id: int, pp_id: int, data: bytes) -> None:
        if pp_id == text_ppid:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                pp_id = binary_ppid  # hand it on as bytes: the link drops and counts it
        try:
            await original(stream_id, pp_id, data)
        except Exception as exc:  # a client's frame broke aiortc's handling: report, keep the association
            on_failure(exc)

    setattr(transport, _RECEIVE, guarded)
    setattr(transport, _MARK, True)
    return True


__all__ = ["PRIVATE_NAMES", "guard_receive", "missing_private_names"]
