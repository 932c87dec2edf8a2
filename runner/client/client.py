"""``SmallWebRTCClient``: a Python (aiortc) peer that speaks the SmallWebRTC protocol like the JS client.

Transceivers audio sendrecv, video sendrecv (+ screen sendonly), data channel ``chat``; offer
POSTed over HTTP, own candidates PATCHed after the answer; ``trackStatus`` + ``ping:`` keepalives
on the channel; RTVI ``client-ready`` -> ``bot-ready`` (with a timeout); reconnection as in
:mod:`runner.client.reconnect`. Events (handlers get the client first): ``state-changed``
(state), ``connected``, ``bot-ready`` (data), ``bot-disconnected``, ``server-message`` (data),
``rtvi-message`` (message), ``app-message`` (message), ``signalling`` (message),
``track-started`` / ``track-stopped`` (track, kind), ``reconnecting`` (attempt, restart_pc),
``reconnected`` (pc_id), ``disconnected`` (reason), ``error`` (message).

ICE: the server list is explicit (empty by default: aiortc would otherwise use a public STUN
server), and ``host_addresses`` chooses the local addresses gathered (loopback needs this).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from aiortc import (
    MediaStreamTrack,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from runner.client import sdp as sdp_tools
from runner.client.peer import (
    AudioSink,
    VideoSink,
    client_about,
    describe,
    ice_server,
    local_offer,
    new_client_pc,
    read_remote_track,
    retire_pc,
    track_kind,
)
from runner.client.reconnect import InboundWatch, ReconnectPolicy, ReconnectTracker, packets_received
from runner.client.signalling import (
    HttpStatusError,
    OfferEndpoint,
    SignallingError,
    patch_candidates,
    post_offer,
    resolve_connection_params,
    start_bot,
)
from runner.events import EventEmitter
from runner.rtvi_protocol import Envelope, parse_rtvi, rtvi_envelope
from runner.webrtc.ice import validate_host_addresses

log = structlog.get_logger("runner.client")

RTVI_CLIENT_VERSION = "2.1.0"
TRICKLE_INTERVAL_SECS = 0.2
PING_INTERVAL_SECS = 1.0
MAX_PENDING_MESSAGES = 50
CLIENT_EVENTS = (
    "state-changed",
    "connected",
    "bot-ready",
    "bot-disconnected",
    "server-message",
    "rtvi-message",
    "app-message",
    "signalling",
    "track-started",
    "track-stopped",
    "reconnecting",
    "reconnected",
    "disconnected",
    "error",
)


class ClientError(Exception):
    """Connecting failed, or a request could not be completed."""


class RequestError(ClientError):
    """A ``client-message`` request was answered with ``error-response``."""


@dataclass
class ClientStats:
    """Timings and counters of one client (milliseconds from ``connect()``)."""

    connected_ms: float | None = None
    bot_ready_ms: float | None = None
    messages_in: int = 0
    messages_out: int = 0
    reconnects: int = 0
    offers: int = 0
    negotiated_audio: list[str] = field(default_factory=list)
    negotiated_video: list[str] = field(default_factory=list)


class SmallWebRTCClient(EventEmitter):
    """One connection to a SmallWebRTC server (see the module docstring)."""

    def __init__(
        self,
        *,
        ice_servers: list[RTCIceServer] | list[dict[str, Any]] | None = None,
        host_addresses: list[str] | None = None,
        audio_track: MediaStreamTrack | None = None,
        video_track: MediaStreamTrack | None = None,
        screen_track: MediaStreamTrack | None = None,
        enable_screen: bool = False,
        audio_codec: str | None = None,
        video_codec: str | None = None,
        trickle: bool = True,
        connect_timeout_secs: float = 15.0,
        ready_timeout_secs: float = 10.0,
        reconnect: ReconnectPolicy | None = None,
        offer_url_template: str | None = None,
    ) -> None:
        super().__init__()
        for name in CLIENT_EVENTS:
            self._register_event_handler(name)
        self._ice_servers = [ice_server(s) for s in (ice_servers or [])]
        self.host_addresses = validate_host_addresses(host_addresses) if host_addresses else None
        self._tracks: list[MediaStreamTrack | None] = [audio_track, video_track, screen_track]
        self.enable_screen = enable_screen or screen_track is not None
        self.audio_codec = audio_codec
        self.video_codec = video_codec
        self.trickle = trickle
        self.connect_timeout_secs = connect_timeout_secs
        self.ready_timeout_secs = ready_timeout_secs
        self.offer_url_template = offer_url_template
        self._reconnect = ReconnectTracker(reconnect or ReconnectPolicy())
        self.state = "disconnected"
        self.stats = ClientStats()
        self.pc: RTCPeerConnection | None = None
        self.pc_id: str | None = None
        self.last_offer_sdp: str | None = None
        self.last_answer_sdp: str | None = None
        self.disconnect_reason: str | None = None
        self.bot_ready_data: Any = None
        self._endpoint: OfferEndpoint | None = None
        self._http: aiohttp.ClientSession | None = None
        self._channel: RTCDataChannel | None = None
        self._pending_out: list[str] = []
        self._candidates: list[dict[str, Any]] = []
        self._trickle_enabled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._readers: dict[int, asyncio.Task[None]] = {}
        self._requests: dict[str, asyncio.Future[Any]] = {}
        self._ready_id: str | None = None
        self._ready: asyncio.Future[Any] | None = None
        self._channel_open: asyncio.Event = asyncio.Event()
        self._disconnect_timer: asyncio.TimerHandle | None = None
        self._silent_pc: RTCPeerConnection | None = None  # current pc while its server is silent
        self._watched: set[RTCPeerConnection] = set()
        self._closing = False
        self._t0 = 0.0
        self._audio_sinks: list[AudioSink] = []
        self._video_sinks: list[VideoSink] = []
        self.remote_tracks: dict[str, MediaStreamTrack] = {}

    # -- configuration ---------------------------------------------------------------------

    def set_audio_codec(self, codec: str | None) -> None:
        """Offer only this audio codec (prefix of the rtpmap, e.g. ``"PCMU/8000"``); None = all."""
        self.audio_codec = codec

    def set_video_codec(self, codec: str | None) -> None:
        """Offer only this video codec (e.g. ``"VP8/90000"``, ``"H264"``); None = all."""
        self.video_codec = codec

    def add_audio_sink(self, sink: AudioSink) -> None:
        """Call ``sink(samples, arrival_time)`` with the bot's audio as 48 kHz mono int16."""
        self._audio_sinks.append(sink)

    def add_video_sink(self, sink: VideoSink) -> None:
        """Call ``sink(frame)`` with every video frame of the bot."""
        self._video_sinks.append(sink)

    @property
    def reconnect_attempts(self) -> int:
        """Failed reconnection attempts since the connection was last healthy."""
        return self._reconnect.attempts

    async def __aenter__(self) -> SmallWebRTCClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.state not in ("disconnected", "error"):
            await self.disconnect()

    # -- connecting --------------------------------------------------------------------------

    async def start_bot_and_connect(
        self,
        endpoint: str,
        request_data: Any = None,
        headers: dict[str, str] | None = None,
        timeout_secs: float | None = None,
    ) -> Any:
        """POST to a start endpoint, then :meth:`connect` with its answer; returns bot-ready data."""
        self._t0 = time.monotonic()
        self.stats = ClientStats()
        await self._set_state("initializing")
        try:
            answer = await start_bot(self._session(), endpoint, request_data, headers, timeout_secs)
            params = resolve_connection_params(
                answer, start_url=endpoint, start_headers=headers, offer_url_template=self.offer_url_template
            )
        except Exception as exc:
            await self._fail(f"start failed: {exc}")
            raise ClientError(str(exc)) from exc
        return await self._connect_resolved(params.endpoint, params.ice_servers)

    async def connect(self, params: str | dict[str, Any]) -> Any:
        """Connect with ``webrtcUrl`` / ``webrtcRequestParams`` / a start answer; returns bot-ready data."""
        self._t0 = time.monotonic()
        self.stats = ClientStats()
        await self._set_state("initializing")
        try:
            resolved = resolve_connection_params(params, offer_url_template=self.offer_url_template)
        except SignallingError as exc:
            await self._fail(str(exc))
            raise ClientError(str(exc)) from exc
        return await self._connect_resolved(resolved.endpoint, resolved.ice_servers)

    async def _connect_resolved(self, endpoint: OfferEndpoint, ice: list[dict[str, Any]] | None) -> Any:
        self._endpoint = endpoint
        self._closing = False
        self.disconnect_reason = None
        self.pc_id = None  # a new session, never a renegotiation of an old one
        self._reconnect.reset()
        if ice is not None:
            self._ice_servers = [ice_server(s) for s in ice]
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._channel_open = asyncio.Event()
        await self._set_state("connecting")
        try:
            pc = self._new_pc()
            self.pc = pc
            await self._negotiate(pc, restart_pc=False)
            await asyncio.wait_for(self._channel_open.wait(), self.connect_timeout_secs)
        except Exception as exc:
            reason = describe(exc, "connecting timed out (data channel never opened)")
            await self._fail(f"could not connect: {reason}")
            raise ClientError(reason) from exc
        self.stats.connected_ms = self._elapsed_ms()
        await self._set_state("connected")
        await self._call_event_handler("connected")
        self._ready_id = uuid.uuid4().hex[:8]
        self._send_now(
            rtvi_envelope("client-ready", {"version": RTVI_CLIENT_VERSION, "about": client_about()}, self._ready_id)
        )
        await self._set_state("ready")
        try:
            data = await asyncio.wait_for(asyncio.shield(self._ready), self.ready_timeout_secs)
        except TimeoutError as exc:
            await self._fail(f"no bot-ready within {self.ready_timeout_secs:g} s")
            raise ClientError(f"no bot-ready within {self.ready_timeout_secs:g} s") from exc
        except asyncio.CancelledError:
            if self._closing:
                raise ClientError(self.disconnect_reason or "disconnected before bot-ready") from None
            raise
        return data

    def _new_pc(self) -> RTCPeerConnection:
        pc, channel = new_client_pc(self._ice_servers, self._tracks, screen=self.enable_screen)
        self._adopt_channel(pc, channel)

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            self._on_remote_track(pc, track)

        @pc.on("iceconnectionstatechange")
        async def _on_ice() -> None:
            await self._on_ice_state(pc)

        @pc.on("connectionstatechange")
        async def _on_conn() -> None:
            await self._on_connection_state(pc)

        return pc

    async def _negotiate(self, pc: RTCPeerConnection, *, restart_pc: bool) -> None:
        """Offer on ``pc``, POST it with the current ``pc_id``, apply the answer, trickle."""
        assert self._endpoint is not None
        sdp, candidates = await local_offer(
            pc,
            host_addresses=self.host_addresses,
            audio_codec=self.audio_codec,
            video_codec=self.video_codec,
            trickle=self.trickle,
        )
        self._candidates.extend(candidates)
        self.last_offer_sdp = sdp
        self.stats.offers += 1
        answer = await post_offer(self._session(), self._endpoint, sdp, self.pc_id, restart_pc)
        if pc.connectionState == "closed":
            raise ClientError("peer connection closed during negotiation")
        self.pc_id = str(answer.get("pc_id") or self.pc_id or "")
        self.last_answer_sdp = answer["sdp"]
        self.stats.negotiated_audio = sdp_tools.negotiated_codecs(answer["sdp"], "audio")
        self.stats.negotiated_video = sdp_tools.negotiated_codecs(answer["sdp"], "video")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=str(answer.get("type", "answer"))))
        self._trickle_enabled = True
        self._spawn(self._flush_candidates())

    async def _flush_candidates(self) -> None:
        """Send queued candidates in batches, at most every 200 ms, with the current pc_id."""
        while self._candidates and self._trickle_enabled and not self._closing:
            batch, self._candidates = self._candidates, []
            if self._endpoint is not None and self.pc_id:
                try:
                    await patch_candidates(self._session(), self._endpoint, self.pc_id, batch)
                except SignallingError as exc:  # the JS client ignores PATCH failures too
                    log.debug("client_patch_failed", error=str(exc))
            await asyncio.sleep(TRICKLE_INTERVAL_SECS)

    # -- data channel ------------------------------------------------------------------------

    def _adopt_channel(self, pc: RTCPeerConnection, channel: RTCDataChannel) -> None:
        @channel.on("open")
        def _on_open() -> None:
            if pc is not self.pc:
                return
            self._channel = channel
            for index in range(3 if self.enable_screen else 2):
                enabled = self._tracks[index] is not None
                message = {"receiver_index": index, "enabled": enabled, "type": "trackStatus"}
                self._send_now({"type": "signalling", "message": message}, count=False)
            pending, self._pending_out = self._pending_out, []
            for text in pending:
                channel.send(text)
            self._spawn(self._ping_loop(channel))
            self._channel_open.set()

        @channel.on("message")
        def _on_message(data: str | bytes) -> None:
            if pc is self.pc:
                self._on_channel_message(data)

    async def _ping_loop(self, channel: RTCDataChannel) -> None:
        while channel.readyState == "open" and not self._closing:
            try:
                channel.send(f"ping: {int(time.time() * 1000)}")
            except Exception:  # closing under us
                return
            await asyncio.sleep(PING_INTERVAL_SECS)

    def _send_now(self, obj: Any, count: bool = True) -> bool:
        text = json.dumps(obj, separators=(",", ":"))
        channel = self._channel
        if count:
            self.stats.messages_out += 1
        if channel is not None and channel.readyState == "open":
            try:
                channel.send(text)
                return True
            except Exception as exc:
                log.debug("client_send_failed", error=str(exc))
        if len(self._pending_out) < MAX_PENDING_MESSAGES:
            self._pending_out.append(text)
            return True
        return False

    def send_app_message(self, message: Any) -> bool:
        """Send any JSON value on the data channel (queued while reconnecting)."""
        if self.state not in ("connected", "ready"):
            raise ClientError(f"cannot send while {self.state}")
        return self._send_now(message)

    def sendrtvi_envelope(self, msg_type: str, data: Any = None, msg_id: str | None = None) -> str:
        """Send an RTVI message; returns its id."""
        msg_id = msg_id or uuid.uuid4().hex[:8]
        self.send_app_message(rtvi_envelope(msg_type, data, msg_id))
        return msg_id

    async def send_client_message(self, msg_type: str, data: Any = None, timeout_secs: float = 10.0) -> Any:
        """RTVI ``client-message`` ``{t, d}``; returns the ``d`` of the matching ``server-response``."""
        msg_id = uuid.uuid4().hex[:8]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._requests[msg_id] = future
        try:
            self.sendrtvi_envelope("client-message", {"t": msg_type, "d": data}, msg_id)
            return await asyncio.wait_for(future, timeout_secs)
        except TimeoutError:
            raise ClientError(f"no answer to client-message {msg_type!r} within {timeout_secs:g} s") from None
        finally:
            self._requests.pop(msg_id, None)

    def _on_channel_message(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        try:
            message = json.loads(data)
        except ValueError:
            log.debug("client_non_json_message", text=data[:100])
            return
        if not isinstance(message, dict):
            return
        self.stats.messages_in += 1
        if message.get("type") == "signalling":
            self._on_signalling(message.get("message"))
        elif (envelope := parse_rtvi(message)) is not None:
            self._onrtvi_envelope(message, envelope)
        else:
            self._spawn_event_handler("app-message", message)

    def _on_signalling(self, payload: Any) -> None:
        self._spawn_event_handler("signalling", payload)
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind == "renegotiate":
            self._spawn(self.attempt_reconnection(recreate=False))
        elif kind == "peerLeft":
            self._spawn_event_handler("bot-disconnected")
            self._spawn(self.disconnect("bot left (peerLeft)"))

    def _onrtvi_envelope(self, message: dict[str, Any], envelope: Envelope) -> None:
        msg_type, msg_id, data = envelope
        self._spawn_event_handler("rtvi-message", message)
        if msg_type == "bot-ready":
            if self._ready is not None and not self._ready.done():
                self.stats.bot_ready_ms = self._elapsed_ms()
                self.bot_ready_data = data
                self._ready.set_result(data)
                self._spawn_event_handler("bot-ready", data)
        elif msg_type == "server-message":
            self._spawn_event_handler("server-message", data)
        elif msg_type in ("server-response", "error-response") and isinstance(msg_id, str):
            future = self._requests.get(msg_id)
            if future is not None and not future.done():
                if msg_type == "server-response":
                    future.set_result(data.get("d") if isinstance(data, dict) else data)
                else:
                    error = data.get("error") if isinstance(data, dict) else data
                    future.set_exception(RequestError(str(error)))
        elif msg_type == "error":
            self._spawn_event_handler("error", str(data.get("error") if isinstance(data, dict) else data))

    # -- remote media -----------------------------------------------------------------------

    def _on_remote_track(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        kind = track_kind(pc, track)
        self.remote_tracks[kind] = track
        self._spawn(
            read_remote_track(
                track,
                on_started=lambda: self._spawn_event_handler("track-started", track, kind),
                on_stopped=lambda: self._spawn_event_handler("track-stopped", track, kind),
                audio_sinks=self._audio_sinks,
                video_sinks=self._video_sinks,
            )
        )

    # -- connection health and reconnection -------------------------------------------------

    async def _on_ice_state(self, pc: RTCPeerConnection) -> None:
        if pc is not self.pc or self._closing:
            return
        state = pc.iceConnectionState
        if state == "failed":
            await self.attempt_reconnection(recreate=True)
        elif self._disconnected(pc):  # "disconnected" is browsers only; inbound silence stands in
            self._arm_disconnect_timer(pc)
        else:
            self._disarm_disconnect_timer()

    def _disconnected(self, pc: RTCPeerConnection) -> bool:
        return pc.iceConnectionState == "disconnected" or self._silent_pc is pc

    def _arm_disconnect_timer(self, pc: RTCPeerConnection) -> None:
        if self._disconnect_timer is not None:
            return
        log.info("client_connection_disconnected", pc_id=self.pc_id)

        def fire() -> None:
            self._disconnect_timer = None
            if pc is self.pc and not self._closing and self._disconnected(pc):
                self._spawn(self.attempt_reconnection(recreate=True))

        grace = self._reconnect.policy.disconnected_grace_secs
        self._disconnect_timer = asyncio.get_running_loop().call_later(grace, fire)

    def _disarm_disconnect_timer(self) -> None:
        if self._disconnect_timer is not None:
            self._disconnect_timer.cancel()
            self._disconnect_timer = None

    async def _watch_inbound(self, pc: RTCPeerConnection) -> None:
        """Mark ``pc`` disconnected while the server sends nothing (see :class:`InboundWatch`)."""
        policy = self._reconnect.policy
        watch = InboundWatch(policy.inbound_silence_secs)
        try:
            while pc is self.pc and not self._closing and pc.connectionState not in ("failed", "closed"):
                silent = watch.observe(await packets_received(pc), time.monotonic())
                if silent and self._silent_pc is not pc:
                    self._silent_pc = pc
                    self._arm_disconnect_timer(pc)
                elif not silent and self._silent_pc is pc:
                    self._silent_pc = None
                    log.info("client_connection_recovered", pc_id=self.pc_id)
                    self._disarm_disconnect_timer()
                await asyncio.sleep(policy.inbound_check_secs)
        finally:
            self._watched.discard(pc)
            if self._silent_pc is pc:
                self._silent_pc = None

    async def _on_connection_state(self, pc: RTCPeerConnection) -> None:
        if pc is not self.pc or self._closing:
            return
        state = pc.connectionState
        if state == "connected":
            if self._reconnect.attempts:
                log.info("client_reconnected", pc_id=self.pc_id)
            self._reconnect.reset()
            if pc not in self._watched:
                self._watched.add(pc)
                self._spawn(self._watch_inbound(pc))
        elif state in ("failed", "closed") and self.state in ("connected", "ready"):
            await self.attempt_reconnection(recreate=True)

    async def attempt_reconnection(self, recreate: bool) -> None:
        """Restart (``recreate``: new pc, ``restart_pc: true``) or renegotiate the current pc."""
        if self._closing or self._reconnect.in_progress or self.pc is None:
            return
        if self._reconnect.exhausted():
            attempts = self._reconnect.policy.max_attempts
            await self._give_up(f"reconnection failed after {attempts} attempts")
            return
        attempt = self._reconnect.begin()
        log.info("client_reconnecting", attempt=attempt, restart_pc=recreate, pc_id=self.pc_id)
        await self._call_event_handler("reconnecting", attempt, recreate)
        retry = False
        try:
            if recreate:
                old = self.pc
                self._trickle_enabled = False
                self._candidates = []
                self._channel = None
                self._channel_open = asyncio.Event()
                self._disarm_disconnect_timer()
                for transceiver in old.getTransceivers():  # our tracks move to the new pc
                    transceiver.sender.replaceTrack(None)
                new = self._new_pc()
                self.pc = new
                try:
                    await self._negotiate(new, restart_pc=True)
                finally:
                    # closed only after the offer, as the JS client does: a DTLS close reaching the
                    # server first would end the very session this restart is meant to keep
                    await retire_pc(old)
                await asyncio.wait_for(self._channel_open.wait(), self.connect_timeout_secs)
            else:
                await self._negotiate(self.pc, restart_pc=False)
            self._reconnect.succeeded += 1
            self.stats.reconnects += 1
            await self._call_event_handler("reconnected", self.pc_id)
        except HttpStatusError as exc:
            if exc.fatal:
                self._reconnect.end()
                await self._give_up(f"server refused reconnection: {exc}")
                return
            retry = True
            log.warning("client_reconnect_failed", attempt=attempt, error=str(exc))
        except Exception as exc:
            retry = True
            log.warning("client_reconnect_failed", attempt=attempt, error=describe(exc, "timeout"))
        finally:
            self._reconnect.end()
        if retry and not self._closing:
            if self._reconnect.exhausted():
                attempts = self._reconnect.policy.max_attempts
                await self._give_up(f"reconnection failed after {attempts} attempts")
                return
            await asyncio.sleep(self._reconnect.policy.retry_delay_secs)
            if not self._closing:
                await self.attempt_reconnection(recreate=True)

    async def _give_up(self, reason: str) -> None:
        log.warning("client_giving_up", reason=reason)
        await self._call_event_handler("error", reason)
        await self.disconnect(reason, final_state="error")

    # -- teardown ---------------------------------------------------------------------------

    async def disconnect(self, reason: str = "client disconnected", final_state: str = "disconnected") -> None:
        """Close the peer connection (the server learns it from DTLS close); idempotent."""
        if self._closing:
            return
        self._closing = True
        self.disconnect_reason = reason
        await self._set_state("disconnecting")
        if self._disconnect_timer is not None:
            self._disconnect_timer.cancel()
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        for future in self._requests.values():
            if not future.done():
                future.set_exception(ClientError(f"disconnected: {reason}"))
        pc, self.pc = self.pc, None
        if pc is not None:
            await retire_pc(pc)
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        if self._http is not None:
            await self._http.close()
            self._http = None
        self._channel = None
        await self._set_state(final_state)
        await self._call_event_handler("disconnected", reason)
        await self._wait_event_handlers(1.0)

    async def _fail(self, reason: str) -> None:
        await self.disconnect(reason, final_state="error")
        await self._call_event_handler("error", reason)

    # -- helpers ----------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    async def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            await self._call_event_handler("state-changed", state)

    def _elapsed_ms(self) -> float:
        return (time.monotonic() - self._t0) * 1000.0

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
