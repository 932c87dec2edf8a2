"""Receivers that cost nothing until someone reads them, and frame queues that cannot grow.

aiortc starts every receiving transceiver when DTLS connects: a decoder thread each, frames
decoded whether or not anybody reads the track, and queued without bound in the track. An
offer with dozens of m-lines would start dozens of threads and let memory grow for every
stream nobody reads. :func:`gate_receivers` (called by the connection after every remote
description) changes that per receiver instance:

* the remote track's queue becomes a :class:`FrameQueue`: bounded, dropping (and counting) the
  oldest frame when full, and its first ``get()`` (the first ``track.recv()``) opens the gate;
* aiortc's ``receive()`` is shadowed by a :class:`ReceiverGate`: until a reader attaches, the
  receiver is only registered with the transport's router (so its packets are not misrouted
  to a read receiver) and stays disabled: no thread, no RTCP task, packets discarded;
* :func:`close_receiver` (a reader detaches) disables it again; every negotiation re-applies
  that, since aiortc re-enables receivers whenever it sets a direction.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters

from runner.webrtc import aiortc_internals as internals

log = structlog.get_logger("runner.webrtc.receivers")

#: Decoded frames a remote track holds for a slow reader (oldest dropped): 1 s of 20 ms audio.
AUDIO_QUEUE_FRAMES = 50
#: The same for video: a reader keeps only the newest frame anyway.
VIDEO_QUEUE_FRAMES = 8


class FrameQueue(asyncio.Queue[Any]):
    """A remote track's frame queue: bounded, drops the oldest frame when full, never blocks.

    The end-of-stream ``None`` always fits and is never dropped; frames after it are ignored.
    The first ``get()`` opens ``gate``.
    """

    def __init__(self, maxsize: int, gate: ReceiverGate | None = None) -> None:
        super().__init__(maxsize=0)  # the bound is enforced here, so put() never waits
        self.limit = maxsize
        self.dropped = 0
        self.gate = gate
        self._ended = False

    def put_nowait(self, item: Any) -> None:
        if self._ended:
            self.dropped += item is not None
            return
        if self.qsize() >= self.limit:
            super().get_nowait()
            self.dropped += 1
        self._ended = item is None
        super().put_nowait(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    async def get(self) -> Any:
        gate = self.gate
        if gate is not None and not gate.reading:
            await gate.open()
        return await super().get()


class ReceiverGate:
    """Shadows one receiver's ``receive()``: aiortc starts it only while a reader is attached."""

    def __init__(self, receiver: RTCRtpReceiver, original: Any) -> None:
        self.receiver = receiver
        self.original = original
        self.reading = False
        self.parameters: RTCRtpReceiveParameters | None = None

    async def __call__(self, parameters: RTCRtpReceiveParameters) -> None:
        """aiortc's call once DTLS is up (and again after each negotiation)."""
        self.parameters = parameters
        if self.reading:
            await self._start()
        else:
            if not internals.receiver_started(self.receiver):
                internals.register_with_router(self.receiver, parameters)
            internals.set_receiver_enabled(self.receiver, False)

    async def open(self) -> None:
        """A reader attached: start (or re-enable) the receiver."""
        self.reading = True
        if self.parameters is not None and self.receiver.transport.state == "connected":
            await self._start()

    def close(self) -> None:
        """The reader detached: discard this receiver's packets until one attaches again."""
        self.reading = False
        internals.set_receiver_enabled(self.receiver, False)

    async def _start(self) -> None:
        assert self.parameters is not None
        if not internals.receiver_started(self.receiver):
            internals.unregister_from_router(self.receiver)  # receive() registers it again
        internals.set_receiver_enabled(self.receiver, True)
        await self.original(self.parameters)


class _EndingStop:
    """Shadows ``receiver.stop()``: a receiver that never started still ends its track.

    aiortc ends a remote track from its decoder thread; a gated receiver that never started
    has none, so a reader of its track would wait forever after the pc closed.
    """

    def __init__(self, receiver: RTCRtpReceiver, original: Any, queue: FrameQueue) -> None:
        self.receiver, self.original, self.queue = receiver, original, queue

    async def __call__(self) -> None:
        if not internals.receiver_started(self.receiver):
            self.queue.put_nowait(None)
        await self.original()


def gate_receivers(pc: RTCPeerConnection) -> int:
    """Gate every receiver of ``pc`` not gated yet (after ``setRemoteDescription``); how many were."""
    count = 0
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        gate = receiver.receive
        if not isinstance(gate, ReceiverGate):
            if internals.receiver_started(receiver):
                continue  # already running (gated too late): leave it as aiortc runs it
            gate = ReceiverGate(receiver, receiver.receive)
            receiver.receive = gate  # type: ignore[method-assign]
            internals.set_receiver_enabled(receiver, False)
            count += 1
        track = internals.receiver_remote_track(receiver)
        queue = internals.track_frame_queue(track) if track is not None else None
        if queue is not None and not isinstance(queue, FrameQueue) and not internals.receiver_started(receiver):
            limit = AUDIO_QUEUE_FRAMES if transceiver.kind == "audio" else VIDEO_QUEUE_FRAMES
            bounded = FrameQueue(limit, gate)
            while not queue.empty():
                bounded.put_nowait(queue.get_nowait())
            internals.set_track_frame_queue(track, bounded)
            receiver.stop = _EndingStop(receiver, receiver.stop, bounded)  # type: ignore[method-assign]
    return count


def _gate_of(receiver: RTCRtpReceiver) -> ReceiverGate | None:
    gate = receiver.receive
    return gate if isinstance(gate, ReceiverGate) else None


async def open_receiver(receiver: RTCRtpReceiver) -> None:
    """A reader attaches to ``receiver`` (``track.recv()`` does this by itself)."""
    gate = _gate_of(receiver)
    if gate is not None:
        await gate.open()


def close_receiver(receiver: RTCRtpReceiver) -> None:
    """A reader detaches: the receiver stops decoding until one attaches again."""
    gate = _gate_of(receiver)
    if gate is not None:
        gate.close()


def frames_dropped(receiver: RTCRtpReceiver) -> int:
    """Decoded frames the receiver's track dropped because its reader fell behind."""
    track = internals.receiver_remote_track(receiver)
    queue = internals.track_frame_queue(track) if track is not None else None
    return queue.dropped if isinstance(queue, FrameQueue) else 0


__all__ = [
    "FrameQueue",
    "ReceiverGate",
    "close_receiver",
    "frames_dropped",
    "gate_receivers",
    "open_receiver",
]
