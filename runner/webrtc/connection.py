"""``SmallWebRTCConnection``: one client's aiortc peer connection, answered over HTTP signalling.

Events (handlers get the connection first): ``new``, ``connecting``, ``connected``, ``failed``,
``disconnected``, ``closed``, ``app-message`` (message), ``track-started`` / ``track-ended``
(track), ``track-status`` (receiver_index, enabled), ``client-ready``, ``client-message``
(msg_type, data, request_id), ``disconnect-bot``, ``pc-replaced`` (old_pc_id, new_pc_id),
``suspended`` (reason), ``resumed`` (how).

Semantics chosen here:

* ``connected`` fires once per peer connection, and only after :meth:`connect` (the pipeline is
  ready); app messages arriving earlier are buffered and replayed by :meth:`connect`.
* A peer that *may come back* suspends the connection: keepalive pings stopping for
  ``keepalive_timeout_secs`` (once pings were seen), or aiortc's ``failed`` (ICE consent lost).
  ``suspended`` fires, :meth:`is_connected` turns false and the output tracks are detached from
  the senders (nothing is encoded or paced toward a dead pc). Pings returning on the same pc, or a
  ``restart_pc`` whose new pc connects, fire ``resumed`` and re-attach the output tracks. A
  connection still suspended after ``resume_window_secs`` is lost (``disconnected``, ``closed``).
  With ``resume_window_secs=0`` a lost peer ends the connection at once.
* ``disconnected`` means *the peer* went away for good: a DTLS close from a live client (aiortc's
  ``closed`` without our asking), or the resume window running out. A pc closing while the
  connection is already suspended is the blackout's consent failure, not a goodbye: it stays
  suspended. ``closed`` fires exactly once when the connection is finished, whoever ended it.
* ``renegotiate(..., restart_pc=True)`` keeps this object, its handlers and its data-channel
  queue, but builds a new aiortc pc with a new ``pc_id``. The old pc's senders are detached
  (``replaceTrack(None)``) *before* it is closed, so aiortc neither stops our output tracks nor
  leaves a write pending on them; the output tracks last given to :meth:`replace_audio_track` /
  :meth:`replace_video_track` are re-attached to the new pc automatically. The old pc fires no
  events. Then ``pc-replaced`` (old_pc_id, new_pc_id) fires, ``track-started`` fires for the new
  remote tracks, and ``connected`` fires again when the new pc connects. No ``disconnected``
  fires for a restart: the session continues. A restart works from the suspended state too (the
  old pc may have failed or been closed by aiortc already); ``resumed`` (``"restart"``) fires when
  the new pc connects.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any, ClassVar

import structlog
from aiortc import MediaStreamTrack, RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver
from aiortc import sdp as aiortc_sdp

from runner.events import EventEmitter
from runner.limits import DEFAULT_LIMITS, Limits
from runner.rtvi_protocol import is_rtvi
from runner.tasks import TaskOwner
from runner.webrtc import aiortc_internals
from runner.webrtc.answer import AnswerSettings, answer_offer
from runner.webrtc.codecs import validate_codecs
from runner.webrtc.datachannel import SIGNALLING_PEER_LEFT, SIGNALLING_RENEGOTIATE, DataChannelLink
from runner.webrtc.errors import CandidateLimitError, SignalingError
from runner.webrtc.ice import (
    CandidateBudget,
    IceServer,
    IceServersArg,
    normalize_ice_servers,
    parse_candidate,
    validate_host_addresses,
)
from runner.webrtc.junk import JunkCounter, JunkKind
from runner.webrtc.liveness import Liveness, Verdict
from runner.webrtc.offer import check_offer
from runner.webrtc.rtvi import RtviSession

CONNECTION_EVENTS: tuple[str, ...] = (
    "new",
    "connecting",
    "connected",
    "disconnected",
    "closed",
    "failed",
    "app-message",
    "track-started",
    "track-ended",
    "track-status",
    "client-ready",
    "client-message",
    "disconnect-bot",
    "pc-replaced",
    "suspended",
    "resumed",
)

#: Longest wait for ``peerLeft`` to leave the data channel before the pc closes.
PEER_LEFT_DRAIN_SECS = 1.0
#: ``ask_to_renegotiate`` sends at most one request per this window.
RENEGOTIATE_DEBOUNCE_SECS = 2.0

_log = structlog.get_logger("runner.webrtc.connection")


class SmallWebRTCConnection(EventEmitter):
    """A client's WebRTC session: offer/answer, tracks, data channel, liveness."""

    _ids: ClassVar[itertools.count[int]] = itertools.count()

    def __init__(
        self,
        ice_servers: IceServersArg = None,
        *,
        connection_timeout_secs: float = 60.0,
        host_addresses: list[str] | None = None,
        advertised_address: str | None = None,
        codecs: dict[str, list[str]] | None = None,
        keepalive_timeout_secs: float | None = None,
        resume_window_secs: float = 0.0,
        limits: Limits | None = None,
    ) -> None:
        super().__init__()
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        for name in CONNECTION_EVENTS:
            self._register_event_handler(name)
        self.ice_servers: list[IceServer] = normalize_ice_servers(ice_servers)
        self.connection_timeout_secs = connection_timeout_secs
        self.host_addresses = validate_host_addresses(host_addresses) if host_addresses else None
        self.advertised_address = advertised_address
        self.codecs = validate_codecs(codecs)
        self._liveness = Liveness(keepalive_timeout_secs, resume_window_secs, connection_timeout_secs)
        self._liveness.new_pc(time.monotonic())
        self._pc: RTCPeerConnection | None = None
        self._pc_id = self._mint_pc_id()
        self._pc_connected = False
        self._connected_fired = False
        self._answer: dict[str, str] | None = None
        self._connect_invoked = False
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._inbox_task: asyncio.Task[None | None] | None = None
        self._closing = False
        self._closed = False
        self._lock = asyncio.Lock()
        # The watchdog, the inbox and deferred closes/resumes: a failing one is logged and ends us.
        self._tasks = TaskOwner(type(self).__name__, on_failure=self._task_failed)
        self._watchdog: asyncio.Task[None | None] | None = None
        self._last_renegotiate_ask = 0.0
        self._track_status: dict[int, bool] = {}
        self._audio_out: MediaStreamTrack | None = None
        self._video_out: MediaStreamTrack | None = None
        self._candidates = CandidateBudget(self.limits.max_candidates_per_pc)
        self._junk = JunkCounter(self._logger)
        self._link = DataChannelLink(
            on_ping=self._on_ping,
            on_track_status=self._on_track_status,
            on_message=self._on_message,
            logger=self._logger,
            limits=self.limits,
            junk=self._junk,
        )
        self._rtvi = RtviSession(
            self.send_app_message,
            self._call_event_handler,
            self.has_event_handlers,
            self._logger,
            limits=self.limits,
            junk=self._junk,
        )

    # -- identity and state ---------------------------------------------------------------------

    def _mint_pc_id(self) -> str:
        return f"{type(self).__name__}#{next(type(self)._ids)}-{uuid.uuid4().hex}"

    def _logger(self) -> Any:
        return _log.bind(pc_id=self._pc_id)

    @property
    def pc_id(self) -> str:
        """Opaque id of the current peer connection (changes on ``restart_pc``)."""
        return self._pc_id

    @property
    def pc(self) -> RTCPeerConnection | None:
        """The underlying aiortc peer connection (None before :meth:`initialize` or after close)."""
        return self._pc

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (or started)."""
        return self._closing

    @property
    def suspended(self) -> bool:
        """True while the peer is gone but may come back (see the module docstring)."""
        return self._liveness.suspended

    @property
    def keepalive_seen(self) -> bool:
        """True once the client sent a ``ping:`` on the current pc (from then on missing ones suspend)."""
        return self._liveness.last_ping is not None

    def is_connected(self) -> bool:
        """True while media may flow: pipeline connected, not suspended, pc connected, pings (if any) fresh."""
        if self._pc is None or self._closing or not self._connect_invoked or self._liveness.suspended:
            return False
        fresh = self._liveness.pings_fresh(time.monotonic())
        return fresh if fresh is not None else self._pc.connectionState == "connected"

    def track_enabled(self, receiver_index: int) -> bool | None:
        """Last ``trackStatus`` the client reported for a receiver (None: never reported)."""
        return self._track_status.get(receiver_index)

    def set_bot_capabilities(self, capabilities: dict[str, bool]) -> None:
        """What ``bot-ready`` advertises (audio_in, audio_out, video_in, screen_in, video_out, metrics)."""
        self._rtvi.capabilities.update(capabilities)

    # -- offer / answer -------------------------------------------------------------------------

    async def initialize(self, sdp: str, type: str) -> None:
        """Answer the client's first offer; afterwards :meth:`get_answer` holds the answer."""
        offer = check_offer(sdp, type, self.limits)
        aiortc_internals.check_internals()  # once per process: fail here, not mid-call
        async with self._lock:
            if self._closing:
                raise SignalingError("connection is closed")
            if self._pc is not None:
                raise SignalingError("connection already initialized; use renegotiate()")
            pc = self._new_pc()
            try:
                await self._answer_offer(pc, sdp, offer)
            except BaseException:
                self._pc = None
                await _close_quietly(pc)
                raise
            if self._watchdog is None:
                self._watchdog = self._tasks.spawn(self._watch(), name="connection-watch")

    async def renegotiate(self, sdp: str, type: str, restart_pc: bool = False) -> None:
        """Answer a new offer on this pc, or on a brand-new pc when ``restart_pc`` is true."""
        offer = check_offer(sdp, type, self.limits)
        async with self._lock:
            if self._closing:
                raise SignalingError("connection is closed")
            if self._pc is None:
                raise SignalingError("connection was never initialized")
            if not restart_pc:
                codec = self.audio_send_codec()
                await self._answer_offer(self._pc, sdp, offer)
                if self.audio_send_codec() != codec:
                    await self._apply_audio_codec()
                return
            old_pc, old_id = self._pc, self._pc_id
            await self._retire_pc(old_pc)
            self._pc_id = self._mint_pc_id()
            self._reset_pc_state()
            pc = self._new_pc()
            self._logger().info("pc_restarting", old_pc_id=old_id)
            try:
                await self._answer_offer(pc, sdp, offer)
            except BaseException:
                self._pc = None
                await _close_quietly(pc)
                self._spawn_close()
                raise
            self._attach_output_tracks()
        await self._call_event_handler("pc-replaced", old_id, self._pc_id)

    def get_answer(self) -> dict[str, str] | None:
        """``{"sdp", "type", "pc_id"}`` of the latest answer, or None before one was made."""
        return dict(self._answer) if self._answer is not None else None

    async def add_ice_candidates(self, candidates: list[dict[str, Any]]) -> None:
        """Add trickled client candidates (PATCH format); an empty ``candidate`` ends them.

        Every entry is parsed first, so a bad one (``InvalidCandidateError``) or one too many
        (``CandidateLimitError``: ``limits.max_candidates_per_patch`` per call, and
        ``max_candidates_per_pc`` distinct ones per pc, inline ones included) rejects the whole
        batch before anything is applied.
        """
        if not isinstance(candidates, list):
            raise SignalingError("'candidates' must be a list")
        if len(candidates) > self.limits.max_candidates_per_patch:
            raise CandidateLimitError(
                f"{len(candidates)} candidates in one request; at most {self.limits.max_candidates_per_patch}"
            )
        parsed = [parse_candidate(item) for item in candidates]
        async with self._lock:  # candidates racing a (re)negotiation go to the pc it produces
            pc = self._pc
            if pc is None or self._closing:
                return
            remote = pc.remoteDescription
            self._candidates.admit(pc, remote.sdp if remote is not None else None, [c for c in parsed if c])
            await self._add_parsed(pc, parsed)

    async def _add_parsed(self, pc: RTCPeerConnection, parsed: list[Any]) -> None:
        for candidate in parsed:
            if candidate is None:
                continue  # aiortc ends remote candidates per-transport; nothing useful to do
            try:
                await pc.addIceCandidate(candidate)
            except Exception as exc:  # aioice may refuse e.g. an unresolvable mDNS name
                self._logger().warning("ice_candidate_rejected", error=f"{type(exc).__name__}: {exc}")

    # -- lifecycle ------------------------------------------------------------------------------

    async def connect(self) -> None:
        """The pipeline is ready: fire ``connected`` if already connected, replay early messages."""
        if self._connect_invoked:
            return
        self._connect_invoked = True
        if self._pc_connected:
            await self._fire_connected()
        while not self._inbox.empty() and not self._closing:  # replay early messages, in order
            await self._dispatch(self._inbox.get_nowait())
        if not self._closing:
            self._inbox_task = self._tasks.spawn(self._drain_inbox(), name="connection-inbox")

    async def disconnect(self) -> None:
        """Tell the client we are leaving (``peerLeft``), then close."""
        if self._closing:
            return
        if self._link.send_json(SIGNALLING_PEER_LEFT):
            # on the wire before DTLS closes; a pc still connecting may yet open the channel
            pending = not self._pc_connected or self._link.channel is not None
            await self._link.drain(PEER_LEFT_DRAIN_SECS, wait_for_open=pending and self._pc is not None)
        await self.close()

    async def close(self) -> None:
        """Close the peer connection and fire ``closed`` (once)."""
        if self._closing:
            return
        self._closing = True
        pc, self._pc = self._pc, None
        for task in (self._watchdog, self._inbox_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if pc is not None:
            await _close_quietly(pc)
        self._link.clear()
        while not self._inbox.empty():
            self._inbox.get_nowait()
        self._junk.log_summary()
        self._closed = True
        self._logger().info("connection_closed")
        await self._call_event_handler("closed")

    # -- media ----------------------------------------------------------------------------------

    def _transceiver(self, index: int, kind: str) -> RTCRtpTransceiver | None:
        if self._pc is None:
            return None
        transceivers = self._pc.getTransceivers()
        if index >= len(transceivers) or transceivers[index].kind != kind:
            return None
        return transceivers[index]

    def _input_track(self, index: int, kind: str) -> MediaStreamTrack | None:
        transceiver = self._transceiver(index, kind)
        if transceiver is None:
            return None
        track = transceiver.receiver.track
        return track if isinstance(track, MediaStreamTrack) else None

    def audio_input_track(self) -> MediaStreamTrack | None:
        """The client's microphone (transceiver 0), or None."""
        return self._input_track(0, "audio")

    def video_input_track(self) -> MediaStreamTrack | None:
        """The client's camera (transceiver 1), or None."""
        return self._input_track(1, "video")

    def screen_video_input_track(self) -> MediaStreamTrack | None:
        """The client's screen share (transceiver 2), or None."""
        return self._input_track(2, "video")

    def replace_audio_track(self, track: MediaStreamTrack | None) -> None:
        """Send ``track`` as bot audio (transceiver 0); kept across ``restart_pc``."""
        self._audio_out = track
        transceiver = self._transceiver(0, "audio")
        if transceiver is not None:
            transceiver.sender.replaceTrack(track)
            set_codec = getattr(track, "set_send_codec", None)
            if callable(set_codec):  # our AudioOutputTrack encodes Opus itself (see tracks.py)
                set_codec(self.audio_send_codec())

    def audio_send_codec(self) -> str | None:
        """MIME type the bot-audio sender negotiated (``audio/opus``...), or None before an answer."""
        transceiver = self._transceiver(0, "audio")
        codecs = aiortc_internals.transceiver_codecs(transceiver) if transceiver is not None else []
        return codecs[0].mimeType if codecs else None

    async def _apply_audio_codec(self) -> None:
        """A renegotiation changed the audio codec: the running sender and our track follow it."""
        transceiver = self._transceiver(0, "audio")
        if transceiver is None:
            return
        codecs = aiortc_internals.transceiver_codecs(transceiver)
        if codecs and aiortc_internals.sender_started(transceiver.sender):
            await aiortc_internals.restart_sender_codec(transceiver.sender, codecs[0])
        set_codec = getattr(self._audio_out, "set_send_codec", None)
        if callable(set_codec):
            set_codec(self.audio_send_codec())
        self._logger().info("audio_codec_changed", codec=self.audio_send_codec())

    def replace_video_track(self, track: MediaStreamTrack | None) -> None:
        """Send ``track`` as bot video (transceiver 1); kept across ``restart_pc``."""
        self._video_out = track
        transceiver = self._transceiver(1, "video")
        if transceiver is not None:
            transceiver.sender.replaceTrack(track)

    def ask_to_renegotiate(self) -> None:
        """Ask the client to re-offer on the same pc (at most once per 2 s)."""
        now = time.monotonic()
        if now - self._last_renegotiate_ask < RENEGOTIATE_DEBOUNCE_SECS:
            return
        self._last_renegotiate_ask = now
        self._link.send_json(SIGNALLING_RENEGOTIATE)

    # -- messages -------------------------------------------------------------------------------

    @property
    def junk_counts(self) -> dict[str, int]:
        """Bad client input dropped so far in this session, by kind (see :class:`JunkKind`)."""
        return self._junk.counts

    def send_app_message(self, message: Any) -> bool:
        """Send ``message`` as JSON on the data channel (queued until it opens, up to ``max_outgoing_queue``)."""
        if self._closing:
            return False
        return self._link.send_json(message)

    def send_server_response(self, request_id: str, msg_type: str, data: Any) -> bool:
        """Answer an RTVI ``client-message`` request."""
        return self._rtvi.send_server_response(request_id, msg_type, data)

    def send_error_response(self, request_id: str | None, error: str) -> bool:
        """Answer an RTVI request with ``error-response``."""
        return self._rtvi.send_error_response(request_id, error)

    def send_server_message(self, data: Any) -> bool:
        """Send an RTVI ``server-message`` with ``data``."""
        return self._rtvi.send_server_message(data)

    def send_rtvi_error(self, error: str, fatal: bool) -> bool:
        """Send the RTVI ``error`` message (a pipeline ``ErrorFrame``) to the client."""
        return self._rtvi.send_error(error, fatal)

    def _on_ping(self) -> None:
        self._liveness.ping(time.monotonic())
        pc = self._pc
        if self._liveness.suspended and pc is not None and pc.connectionState == "connected":
            self._tasks.spawn(self._resume("pings_returned"), name="connection-resume")

    def _on_track_status(self, index: int, enabled: bool) -> None:
        self._track_status[index] = enabled
        self._spawn_event_handler("track-status", index, enabled)

    def _on_message(self, message: dict[str, Any]) -> None:
        """Queue an app message for the bot; the newest is dropped (and counted) when full."""
        limit = self.limits.max_inbox_messages
        if self._inbox.qsize() >= limit:
            self._junk.record(JunkKind.INBOX_FULL, limit=limit, connected=self._connect_invoked)
            return
        self._inbox.put_nowait(message)

    async def _drain_inbox(self) -> None:
        """Handle app messages one at a time, in arrival order (a failing one never stops it)."""
        while True:
            await self._dispatch(await self._inbox.get())

    async def _task_failed(self, name: str, exc: Exception) -> None:
        """A background task of ours died (logged by the owner): a deaf or blind session ends cleanly."""
        if not self._closing:
            await self.close()

    async def _dispatch(self, message: dict[str, Any]) -> None:
        try:
            await self._call_event_handler("app-message", message)
            if is_rtvi(message):
                await self._rtvi.handle(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # our RTVI handling failing on odd input must not make the session deaf
            self._junk.record(JunkKind.DISPATCH_FAILED, level="error", error=f"{type(exc).__name__}: {exc}")

    # -- internals ------------------------------------------------------------------------------

    def _new_pc(self) -> RTCPeerConnection:
        config = RTCConfiguration(
            iceServers=[s.to_rtc() for s in self.ice_servers],  # explicit list: never aiortc's STUN default
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        )
        pc = RTCPeerConnection(configuration=config)
        self._pc = pc
        self._liveness.new_pc(time.monotonic())

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            if pc is self._pc:
                await self._on_pc_state(pc.connectionState)

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if pc is not self._pc:
                return

            @track.on("ended")
            def _on_ended() -> None:
                if pc is self._pc:
                    self._spawn_event_handler("track-ended", track)

            self._spawn_event_handler("track-started", track)

        @pc.on("datachannel")
        def _on_datachannel(channel: Any) -> None:
            if pc is self._pc:
                self._link.adopt(channel)

        return pc

    def _reset_pc_state(self) -> None:
        self._pc_connected = False
        self._connected_fired = False
        self._answer = None

    async def _retire_pc(self, pc: RTCPeerConnection) -> None:
        """Let go of an old pc without touching our output tracks or firing its events."""
        self._pc = None
        self._link.detach()
        pc.remove_all_listeners()
        for transceiver in pc.getTransceivers():
            transceiver.sender.replaceTrack(None)
        await _close_quietly(pc)

    def _attach_output_tracks(self) -> None:
        if self._audio_out is not None:
            self.replace_audio_track(self._audio_out)
        if self._video_out is not None:
            self.replace_video_track(self._video_out)

    async def _answer_offer(self, pc: RTCPeerConnection, sdp: str, offer: aiortc_sdp.SessionDescription) -> None:
        settings = AnswerSettings(self.codecs, self.host_addresses, self.advertised_address)
        answer_sdp = await answer_offer(pc, sdp, offer, settings, self._logger)
        self._answer = {"sdp": answer_sdp, "type": "answer", "pc_id": self._pc_id}

    async def _on_pc_state(self, state: str) -> None:
        self._logger().debug("pc_state", state=state)
        if state == "connected":
            self._pc_connected = True
            if self._liveness.suspended:
                await self._resume("restart")
            if self._connect_invoked:
                await self._fire_connected()
        elif state in ("new", "connecting"):
            await self._call_event_handler(state)
        elif state == "failed":
            self._detach_senders()  # before any await: aiortc's own close of this pc may follow
            await self._call_event_handler("failed")
            await self._suspend("ice_or_dtls_failed")
        elif state == "closed" and not self._closing:
            if self._liveness.suspended:
                self._logger().info("suspended_pc_closed")  # consent lost during the blackout
            else:
                await self._peer_lost("peer_closed")

    def _detach_senders(self) -> None:
        """Take our output tracks off the current pc's senders: aiortc stops pulling (and pacing) them."""
        pc = self._pc
        if pc is None:
            return
        for transceiver in pc.getTransceivers():
            if transceiver.sender.track is not None:
                transceiver.sender.replaceTrack(None)

    async def _suspend(self, reason: str) -> None:
        if self._closing or self._liveness.suspended:
            return
        if not self._liveness.can_suspend:
            await self._peer_lost(reason)
            return
        self._liveness.suspend(time.monotonic())
        self._detach_senders()
        window = self._liveness.resume_window_secs
        self._logger().info("connection_suspended", reason=reason, resume_window_secs=window)
        await self._call_event_handler("suspended", reason)

    async def _resume(self, how: str) -> None:
        suspended_secs = None if self._closing else self._liveness.resume(time.monotonic())
        if suspended_secs is None:
            return
        self._attach_output_tracks()
        self._logger().info("connection_resumed", how=how, suspended_secs=round(suspended_secs, 3))
        await self._call_event_handler("resumed", how)

    async def _fire_connected(self) -> None:
        if self._connected_fired:
            return
        self._connected_fired = True
        self._logger().info("connected")
        await self._call_event_handler("connected")

    async def _peer_lost(self, reason: str) -> None:
        if self._closing:
            return
        self._logger().info("peer_lost", reason=reason)
        if self._link.is_open() and self._link.send_json(SIGNALLING_PEER_LEFT):
            await self._link.drain(PEER_LEFT_DRAIN_SECS)  # best effort: a half-alive client learns it was dropped
        await self._call_event_handler("disconnected")
        await self.close()

    def _spawn_close(self) -> None:
        self._tasks.spawn(self.close(), name="connection-close")

    async def _watch(self) -> None:
        """Connect timeout, keepalive and resume-window supervision (see :mod:`runner.webrtc.liveness`)."""
        liveness = self._liveness
        while not self._closing:
            await asyncio.sleep(liveness.step)
            if self._pc is None and not liveness.suspended:
                continue
            verdict = liveness.verdict(time.monotonic(), self._pc_connected)
            if verdict is Verdict.RESUME_WINDOW_EXPIRED:
                self._logger().warning("resume_window_expired", window_secs=liveness.resume_window_secs)
                await self._peer_lost("resume_window_expired")
                return
            if verdict is Verdict.CONNECT_TIMEOUT:
                self._logger().warning("connect_timeout", timeout_secs=liveness.connect_timeout_secs)
                await self.close()
                return
            if verdict is Verdict.KEEPALIVE_TIMEOUT:
                self._logger().warning("keepalive_timeout", timeout_secs=liveness.keepalive_timeout_secs)
                await self._suspend("keepalive_timeout")


async def _close_quietly(pc: RTCPeerConnection) -> None:
    try:
        await pc.close()
    except Exception as exc:  # closing must never fail a caller
        _log.warning("pc_close_failed", error=f"{type(exc).__name__}: {exc}")
