"""A protocol-speaking aiortc test peer that behaves like the Pipecat JS SmallWebRTC client.

Transceivers audio sendrecv + video sendrecv (+ optional screen sendonly), a ``chat`` data
channel, POST offer, PATCH trickled candidates, ``ping:`` keepalives, trackStatus and RTVI
client-ready. All ICE traffic stays on loopback (host_addresses = 127.0.0.1, no ICE servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import math
import time
import uuid
from collections.abc import Callable
from typing import Any, Self

import aiohttp
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from runner.client import sdp as client_sdp
from runner.client import signalling
from runner.client.peer import local_offer, new_client_pc
from runner.rtvi_protocol import rtvi_envelope

AUDIO_PTIME = 0.02


class ToneTrack(MediaStreamTrack):
    """Real-time paced 20 ms mono s16 frames: a sine tone, or silence when ``amplitude`` is 0."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.3, rate: int = 48000) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self.rate = rate
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        """Next 20 ms frame, paced against the monotonic clock."""
        if self.readyState != "live":
            raise MediaStreamError
        samples = int(self.rate * AUDIO_PTIME)
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._pts / self.rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        t = (np.arange(samples) + self._pts) / self.rate
        wave = self.amplitude * 32767 * np.sin(2 * math.pi * self.frequency * t)
        frame = av.AudioFrame.from_ndarray(wave.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.rate)
        self._pts += samples
        return frame


def frame_rms(frame: av.AudioFrame) -> float:
    """Root-mean-square level of an s16 frame (0..32767)."""
    data = frame.to_ndarray().astype(np.float64)
    return float(np.sqrt(np.mean(np.square(data)))) if data.size else 0.0


def strip_candidates(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """Remove inline candidates from an SDP, returning them in PATCH format (trickle ICE).

    The SDP work is the client's (:mod:`runner.client.sdp`); only the PATCH shape is added here.
    """
    found = [
        {"candidate": text, "sdp_mid": mid, "sdp_mline_index": index}
        for text, mid, index in client_sdp.candidates_by_section(sdp)
    ]
    return client_sdp.strip_candidates(sdp), found


filter_codec = client_sdp.filter_codec


class TestPeer:
    """A JS-client look-alike driven from tests."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        base_url: str,
        *,
        offer_path: str = "/api/offer",
        ping_interval: float = 1.0,
        screen: bool = False,
        trickle: bool = True,
        audio_codec: str | None = None,
        mic: MediaStreamTrack | None = None,
        request_data: Any = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.offer_path = offer_path
        self.ping_interval = ping_interval
        self.screen = screen
        self.trickle = trickle
        self.audio_codec = audio_codec
        self.mic = mic
        self.request_data = request_data
        self.pc: RTCPeerConnection | None = None
        self.pc_id: str | None = None
        self.channel: RTCDataChannel | None = None
        self.answer: dict[str, Any] | None = None
        self.messages: list[Any] = []
        self.audio_frames = 0
        self.audio_levels: list[float] = []
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ping_task: asyncio.Task[None] | None = None
        self._new_message = asyncio.Event()
        self._channel_open = asyncio.Event()

    @property
    def url(self) -> str:
        """Absolute offer URL."""
        return self.base_url + self.offer_path

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _build_pc(self) -> RTCPeerConnection:
        """The client's own peer connection layout (runner.client), with this peer's recording handlers."""
        pc, channel = new_client_pc([], [self.mic], screen=self.screen)
        self._channel_open = asyncio.Event()
        self.channel = channel

        @channel.on("open")
        def _on_open() -> None:
            self._channel_open.set()
            self.send_track_status(0, True)
            self.send_track_status(1, True)
            if self.ping_interval > 0:
                self.start_pings()

        @channel.on("message")
        def _on_message(data: str | bytes) -> None:
            try:
                self.messages.append(json.loads(data))
            except ValueError:
                self.messages.append(data)
            self._new_message.set()

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._spawn(self._read_audio(track))

        return pc

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                self.audio_frames += 1
                self.audio_levels.append(frame_rms(frame))  # type: ignore[arg-type]

    async def _make_offer(self, pc: RTCPeerConnection) -> tuple[str, list[dict[str, Any]]]:
        return await local_offer(pc, host_addresses=["127.0.0.1"], audio_codec=self.audio_codec, trickle=self.trickle)

    async def post_offer(self, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """POST a raw JSON body to the offer URL (response left for the caller)."""
        return await self._session().post(self.url, json=body)

    async def patch(self, body: Any) -> aiohttp.ClientResponse:
        """PATCH a raw JSON body to the offer URL."""
        return await self._session().patch(self.url, json=body)

    async def connect(self, *, restart: bool = False) -> dict[str, Any]:
        """Offer (fresh pc, or ``restart_pc`` with a new pc), apply the answer, trickle candidates."""
        old_pc = self.pc if restart else None
        if old_pc is not None:
            # aiortc stops a sender's track when its pc closes (the server closes the old one first)
            for transceiver in old_pc.getTransceivers():
                transceiver.sender.replaceTrack(None)
        pc = self._build_pc()
        sdp, candidates = await self._make_offer(pc)
        if restart and candidates:
            # like the JS client: new candidates may be PATCHed with the *old* pc_id (answer ignored)
            self._spawn(self._patch_ignoring_answer({"pc_id": self.pc_id, "candidates": candidates}))
        answer = await self._offer(sdp, restart)
        self.pc = pc
        await self._apply_answer(answer, candidates)
        if old_pc is not None:
            await old_pc.close()
        return answer

    async def renegotiate(self) -> dict[str, Any]:
        """New offer on the same pc (``restart_pc: false``)."""
        assert self.pc is not None
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self._offer(self.pc.localDescription.sdp, False)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        self.answer = answer
        return answer

    async def _apply_answer(self, answer: dict[str, Any], candidates: list[dict[str, Any]]) -> None:
        assert self.pc is not None
        self.answer = answer
        self.pc_id = answer["pc_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        if candidates:
            end = {"candidate": "", "sdp_mid": "0", "sdp_mline_index": 0}
            try:
                await signalling.patch_candidates(self._session(), self._endpoint(), self.pc_id, [*candidates, end])
            except signalling.HttpStatusError as exc:
                raise AssertionError(f"candidates PATCH failed: {exc.status} {exc.detail}") from exc

    def _endpoint(self) -> signalling.OfferEndpoint:
        return signalling.OfferEndpoint(self.url, request_data=self.request_data)

    async def _offer(self, sdp: str, restart: bool) -> dict[str, Any]:
        """POST the offer the client's way; a refusal is an AssertionError naming the status."""
        try:
            return await signalling.post_offer(self._session(), self._endpoint(), sdp, self.pc_id, restart)
        except signalling.HttpStatusError as exc:
            raise AssertionError(f"offer failed: {exc.status} {exc.detail}") from exc

    async def _patch_ignoring_answer(self, body: Any) -> None:
        async with await self.patch(body):
            pass

    async def wait_open(self, within: float = 10.0) -> None:
        """Wait for the data channel to open."""
        await asyncio.wait_for(self._channel_open.wait(), within)

    def send(self, obj: Any) -> None:
        """Send a JSON object (or a raw string) on the data channel."""
        assert self.channel is not None
        self.channel.send(obj if isinstance(obj, str) else json.dumps(obj))

    def send_track_status(self, index: int, enabled: bool) -> None:
        """Send a trackStatus signalling message."""
        msg = {"type": "signalling", "message": {"type": "trackStatus", "receiver_index": index, "enabled": enabled}}
        self.send(msg)

    def send_rtvi(self, msg_type: str, data: Any = None, msg_id: str | None = None) -> str:
        """Send an RTVI message; returns its id."""
        msg_id = msg_id or uuid.uuid4().hex[:8]
        self.send(rtvi_envelope(msg_type, data or {}, msg_id))
        return msg_id

    def send_client_ready(self) -> str:
        """Send RTVI client-ready like client-js 1.13."""
        return self.send_rtvi("client-ready", {"version": "2.1.0", "about": {"library": "tests.support.peer"}})

    def start_pings(self) -> None:
        """Start the 1 s ``ping: <ms>`` keepalive."""
        if self._ping_task is None or self._ping_task.done():
            self._ping_task = asyncio.get_running_loop().create_task(self._pings())

    def stop_pings(self) -> None:
        """Stop sending keepalives (the client 'vanishes' for the server's liveness check)."""
        if self._ping_task is not None:
            self._ping_task.cancel()

    async def _pings(self) -> None:
        while True:
            channel = self.channel
            if channel is not None and channel.readyState == "open":
                channel.send(f"ping: {int(time.time() * 1000)}")
            await asyncio.sleep(self.ping_interval)

    async def wait_for(self, predicate: Callable[[Any], bool], within: float = 10.0) -> Any:
        """First received message (old or new) matching ``predicate``."""
        deadline = time.monotonic() + within
        seen = 0
        while True:
            for msg in self.messages[seen:]:
                if predicate(msg):
                    return msg
            seen = len(self.messages)
            self._new_message.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching message; got {self.messages!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_message.wait(), remaining)

    async def wait_rtvi(self, msg_type: str, msg_id: str | None = None, within: float = 10.0) -> dict[str, Any]:
        """Wait for an RTVI message of ``msg_type`` (and ``msg_id`` if given)."""

        def match(m: Any) -> bool:
            return isinstance(m, dict) and m.get("type") == msg_type and (msg_id is None or m.get("id") == msg_id)

        result: dict[str, Any] = await self.wait_for(match, within)
        return result

    async def wait_audio(self, frames: int = 25, min_level: float = 0.0, within: float = 10.0) -> None:
        """Wait until ``frames`` audio frames above ``min_level`` RMS have arrived."""
        deadline = time.monotonic() + within
        while sum(1 for lv in self.audio_levels if lv > min_level) < frames:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.audio_frames} audio frames received")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Close the pc (a clean DTLS close) and the HTTP session."""
        self.stop_pings()
        for task in list(self._tasks):
            task.cancel()
        if self.pc is not None:
            await self.pc.close()
        if self.mic is not None:
            self.mic.stop()
        if self._http is not None:
            await self._http.close()
            self._http = None
