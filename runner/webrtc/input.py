"""``SmallWebRTCInputTransport``: the client's microphone, camera and screen into the pipeline.

Audio: decoded frames of any rate/layout are normalised to ``audio_in_sample_rate`` /
``audio_in_channels`` in exact 20 ms chunks, fed to the VAD (speaking frames, interruption)
and pushed as ``InputAudioRawFrame`` when ``audio_in_passthrough``. Reads have no timeout:
a muted mic is a state, not a warning (pipecat#2755). A track that ends (renegotiation,
``restart_pc``) is replaced by the connection's next one.

Video: a pump per source keeps only the newest decoded frame; a consumer converts it at no
more than ``video_in_framerate``, so a slow pipeline drops frames instead of queueing them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import av
import structlog
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add
from av.audio.codeccontext import AudioCodecContext

from runner.audio.resample import AudioNormalizer
from runner.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    FrameDirection,
    InputAudioRawFrame,
    InputImageRawFrame,
    InputTransportMessageFrame,
    InterruptionFrame,
    StartFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from runner.params import TransportParams
from runner.processors.base import DOWNSTREAM, UPSTREAM, FrameProcessor
from runner.video.convert import frame_to_image

if TYPE_CHECKING:
    from runner.webrtc.transport import SmallWebRTCTransport

log = structlog.get_logger("runner.webrtc.input")

CHUNK_MS = 20
#: A push of input audio that takes longer than this was held back by a sink downstream.
BLOCKED_SECS = 0.003
#: Shed a chunk when at least half of this many pushes (0.5 s) were blocked...
SHED_WINDOW = 25
#: ...or after this many when chunks are also waiting behind them (a backlog of >= 40 ms).
SHED_BACKLOG_BLOCKED = 3
#: Hard cap of chunks waiting to be pushed (oldest dropped): 1 s.
MAX_PENDING_CHUNKS = 50
#: An audio packet this many sequence numbers behind the newest is late (dropped); further
#: behind means the sender restarted its numbering (accepted).
MAX_MISORDER = 100


# ---------------------------------------------------------------- receiver latency
#
# aiortc's RTCRtpReceiver gives every audio receiver JitterBuffer(capacity=16, prefetch=4).
# A frame leaves that buffer only once the *next* frame has arrived and `prefetch` complete
# frames are queued, so each 20 ms Opus packet waits ~4-5 packet times (80-100 ms) inside the
# server before it is even decoded. That buffer exists to smooth *playout*; we do not play
# the audio, we hand it to VAD/STT, which cope with arrival jitter. So, for our receivers only
# (the instance attribute of one RTCRtpReceiver, nothing module-level), we swap in a buffer
# that passes each in-order packet to the decoder the moment it arrives (an audio RTP packet
# is always one whole frame) and drops packets that arrive after a newer one. Measured on
# loopback with an aiortc client (tests/webrtc/test_transport.py::test_round_trip_latency_measured),
# echo round trip median: 187 ms with aiortc's buffer, 125 ms with ours; 44 ms when the client's
# receiver uses it too (the rest of the reference's ~225 ms is the client's own buffer).


#
# With a ``sink`` (our input transport), Opus packets are also decoded right here, on the event
# loop, and the frame handed to the sink: aiortc would queue each packet to a decoder thread
# that decodes to 48 kHz *stereo* and posts every frame back with ``run_coroutine_threadsafe``
# (a coroutine, a task, a self-pipe wake-up and an asyncio queue per 20 ms). Decoding mono in
# place costs less than that hand-over alone. Other codecs still go to aiortc's decoder.

#: Decoded frames go here (called on the event loop, must not block).
AudioSink = Callable[[av.AudioFrame], None]


class LowLatencyAudioJitterBuffer(JitterBuffer):
    """Audio jitter buffer without prefetch: every in-order packet is decoded at once."""

    def __init__(self, codecs: dict[int, Any] | None = None) -> None:
        super().__init__(capacity=16, prefetch=0)
        self._expected: int | None = None
        self.late_packets = 0
        self.decode_errors = 0
        self.sink: AudioSink | None = None
        self._codecs = codecs if codecs is not None else {}
        self._decoder: AudioCodecContext | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._expected is not None:
            behind = uint16_add(self._expected, -seq)
            if 0 < behind <= MAX_MISORDER:
                self.late_packets += 1
                return False, None
        self._expected = uint16_add(seq, 1)
        data: bytes = getattr(packet, "_data", b"")
        sink = self.sink
        if sink is not None and data and self._is_opus(packet.payload_type):
            self._decode(data, sink)
            return False, None
        return False, JitterFrame(data=data, timestamp=packet.timestamp)

    def _is_opus(self, payload_type: int) -> bool:
        codec = self._codecs.get(payload_type)
        return codec is not None and str(getattr(codec, "mimeType", "")).lower() == "audio/opus"

    def _decode(self, data: bytes, sink: AudioSink) -> None:
        if self._decoder is None:
            decoder = AudioCodecContext.create("libopus", "r")
            decoder.format = "s16"
            decoder.layout = "mono"
            decoder.sample_rate = 48000
            self._decoder = decoder
        try:
            frames = self._decoder.decode(av.Packet(data))
        except av.FFmpegError:
            self.decode_errors += 1  # keep the decoder state, like aiortc
            return
        for frame in frames:
            try:
                sink(frame)
            except Exception as exc:  # never let it into aiortc's receive loop
                self.decode_errors += 1
                log.warning("audio_sink_failed", error=f"{type(exc).__name__}: {exc}")


_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_CODECS_ATTR = "_RTCRtpReceiver__codecs"


def tune_audio_receiver(receiver: RTCRtpReceiver, sink: AudioSink | None = None) -> bool:
    """Give one aiortc audio receiver the low-latency jitter buffer; True if it changed.

    With ``sink``, Opus is decoded (mono, 48 kHz) in the buffer and handed to ``sink``
    instead of to the receiver's track; ``sink=None`` on a tuned receiver restores the track.
    """
    current = getattr(receiver, _JITTER_ATTR, None)
    if isinstance(current, LowLatencyAudioJitterBuffer):
        current.sink = sink
        return False
    if not isinstance(current, JitterBuffer) or current.capacity != 16:
        return False  # not the audio buffer layout we know: leave it alone
    codecs = getattr(receiver, _CODECS_ATTR, None)
    buffer = LowLatencyAudioJitterBuffer(codecs if isinstance(codecs, dict) else None)
    buffer.sink = sink
    setattr(receiver, _JITTER_ATTR, buffer)
    return True


def receiver_of(pc: RTCPeerConnection | None, track: MediaStreamTrack) -> RTCRtpReceiver | None:
    """The receiver that produces ``track`` on ``pc``."""
    if pc is None:
        return None
    for transceiver in pc.getTransceivers():
        if transceiver.receiver.track is track:
            return transceiver.receiver
    return None


# ---------------------------------------------------------------- the processor


class SmallWebRTCInputTransport(FrameProcessor):
    """Reads the client's media and app messages into the pipeline (first processor)."""

    #: swap aiortc's 80 ms audio jitter buffer for the low-latency one (see above).
    low_latency_audio: bool = True

    def __init__(self, transport: SmallWebRTCTransport, params: TransportParams, *, name: str | None = None) -> None:
        super().__init__(name=name or "SmallWebRTCInputTransport")
        self._transport = transport
        self._params = params
        self._tasks: list[asyncio.Task[None]] = []
        self._tracks_changed = asyncio.Event()
        self._vad_speaking = False
        self._running = False
        self.audio_frames = 0
        self.audio_shed = 0
        self.video_frames = 0
        self.video_dropped = 0

    @property
    def sample_rate(self) -> int:
        """Rate of the ``InputAudioRawFrame``s this input produces."""
        return self._params.audio_in_sample_rate or self._transport.start_frame.audio_in_sample_rate

    # ------------------------------------------------------------ pipeline side

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, ErrorFrame) and direction is UPSTREAM:
            # Errors travel upstream: here, at the top, the client hears of each one (before a fatal one's peerLeft).
            self._transport.connection.send_rtvi_error(frame.error, frame.fatal)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            # Everything downstream has its StartFrame now: safe to let media in.
            self._transport.set_start_frame(frame)
            await self._transport.connect_client()

    async def stop(self, frame: EndFrame) -> None:
        await self.stop_readers()

    async def cancel(self, frame: CancelFrame) -> None:
        await self.stop_readers()
        await self._transport.disconnect_client()

    async def cleanup(self) -> None:
        await self.stop_readers()
        await self._transport.disconnect_client()
        await super().cleanup()

    # ------------------------------------------------------------ called by the transport

    def start_readers(self) -> None:
        """Start the media readers (once; later calls only note that tracks may have changed)."""
        self._tracks_changed.set()
        if self._running:
            return
        self._running = True
        conn = self._transport.connection
        loop = asyncio.get_running_loop()
        if self._params.audio_in_enabled:
            self._tasks.append(loop.create_task(self._audio_loop(), name=f"{self.name}-audio"))
        if self._params.video_in_enabled:
            for source, getter in (("camera", conn.video_input_track), ("screenVideo", conn.screen_video_input_track)):
                self._tasks.append(loop.create_task(self._video_loop(source, getter), name=f"{self.name}-{source}"))
        self._disable_unused_receivers()

    def tracks_changed(self) -> None:
        """A remote track started or the pc was replaced: readers re-check their tracks."""
        self._tracks_changed.set()
        if self._running:
            self._disable_unused_receivers()

    async def stop_readers(self) -> None:
        """Stop reading media (idempotent)."""
        self._running = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def push_app_message(self, message: Any) -> None:
        """An app message from the client, as a frame."""
        if self.start_frame is not None:
            await self.push_frame(InputTransportMessageFrame(message=message), DOWNSTREAM)

    async def request_end(self) -> None:
        """The client asked the bot to leave (RTVI ``disconnect-bot``): end gracefully."""
        await self.push_frame(EndFrame(reason="client asked the bot to disconnect"), UPSTREAM)

    # ------------------------------------------------------------ audio

    async def _next_track(self, getter: Callable[[], MediaStreamTrack | None], old: MediaStreamTrack | None) -> Any:
        """The current live track from ``getter`` that is not the (ended) ``old`` one."""
        while True:
            self._tracks_changed.clear()
            track = getter()
            if track is not None and track.readyState == "live" and (track is not old or old.readyState == "live"):
                return track
            await self._tracks_changed.wait()

    async def _audio_loop(self) -> None:
        """Pump: read decoded frames as they arrive, normalise, queue 20 ms chunks."""
        conn = self._transport.connection
        normalizer = AudioNormalizer(self.sample_rate, self._params.audio_in_channels, CHUNK_MS)
        vad = self._params.vad_analyzer
        if vad is not None and hasattr(vad, "set_sample_rate"):
            vad.set_sample_rate(self.sample_rate)
        pending: deque[bytes] = deque(maxlen=MAX_PENDING_CHUNKS)
        ready = asyncio.Event()
        consumer = asyncio.get_running_loop().create_task(self._audio_consumer(pending, ready))
        track: MediaStreamTrack | None = None
        tuned: RTCRtpReceiver | None = None

        def deliver(frame: av.AudioFrame) -> None:
            pending.extend(normalizer.push_frame(frame))
            ready.set()

        try:
            while True:
                current = await self._next_track(conn.audio_input_track, track)
                if current is not track:
                    track = current
                    normalizer.reset()
                    if tuned is not None:
                        tune_audio_receiver(tuned, None)
                    tuned = self._tune(track, deliver)
                    log.debug("audio_input_attached", track=track.id, pc_id=conn.pc_id)
                try:
                    # Tuned receivers hand frames to ``deliver``: this only waits for the end.
                    frame = await track.recv()
                except MediaStreamError:
                    continue  # ended: wait for the next track
                if isinstance(frame, av.AudioFrame):
                    deliver(frame)
        finally:
            if tuned is not None:
                tune_audio_receiver(tuned, None)
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)

    async def _audio_consumer(self, pending: deque[bytes], ready: asyncio.Event) -> None:
        """Push queued chunks; shed audio when a real-time sink downstream holds us back.

        Pushing is a direct ``await`` through the pipeline, so when audio goes straight to
        the output track (an echo), the track's backpressure blocks us. Any transient (start
        up, a network burst, a stalled event loop) then leaves a *standing* backlog that a
        real-time source can never work off: latency would ratchet up for good. So when
        most pushes of the last 0.5 s blocked, or pushes keep blocking while chunks wait,
        a chunk is dropped, like CoDel dropping from a standing queue. (The output track
        sheds the complementary case: a standing buffer behind writes that do not block.)
        Pipelines whose processors queue their own work (STT) never block here, so they
        never lose audio.
        """
        streak = 0
        recent: deque[bool] = deque(maxlen=SHED_WINDOW)
        while True:
            while not pending:
                ready.clear()
                await ready.wait()
            chunk = pending.popleft()
            standing = len(recent) == SHED_WINDOW and sum(recent) * 2 >= SHED_WINDOW
            if standing or (pending and streak >= SHED_BACKLOG_BLOCKED):
                streak = 0
                recent.clear()
                self.audio_shed += 1
                continue
            began = time.monotonic()
            await self._audio_chunk(chunk)
            was_blocked = time.monotonic() - began > BLOCKED_SECS
            recent.append(was_blocked)
            streak = streak + 1 if was_blocked else 0

    def _tune(self, track: MediaStreamTrack, sink: AudioSink) -> RTCRtpReceiver | None:
        """Low-latency buffer (decoding into ``sink``) for ``track``'s receiver; the receiver."""
        if not self.low_latency_audio:
            return None
        receiver = receiver_of(self._transport.connection.pc, track)
        if receiver is None:
            return None
        if tune_audio_receiver(receiver, sink):
            log.debug("audio_jitter_buffer_tuned", track=track.id)
        return receiver

    async def _audio_chunk(self, pcm: bytes) -> None:
        self.audio_frames += 1
        vad = self._params.vad_analyzer
        if vad is not None:
            await self._run_vad(vad, pcm)
        if self._params.audio_in_passthrough:
            channels = self._params.audio_in_channels
            frame = InputAudioRawFrame(audio=pcm, sample_rate=self.sample_rate, num_channels=channels)
            await self.push_frame(frame, DOWNSTREAM)

    async def _run_vad(self, vad: Any, pcm: bytes) -> None:
        if self._params.audio_in_channels != 1:
            samples = memoryview(pcm).cast("h")[::2]  # left channel for the (mono) analyzer
            pcm = samples.tobytes()
        state = vad.analyze_audio(pcm)
        name = getattr(state, "name", str(state))
        if name == "SPEAKING" and not self._vad_speaking:
            self._vad_speaking = True
            await self.push_frame(UserStartedSpeakingFrame(), DOWNSTREAM)
            start = self._transport.start_frame
            if start.allow_interruptions:
                await self.push_frame(InterruptionFrame(), DOWNSTREAM)
        elif name == "QUIET" and self._vad_speaking:
            self._vad_speaking = False
            await self.push_frame(UserStoppedSpeakingFrame(), DOWNSTREAM)

    # ------------------------------------------------------------ video

    async def _video_loop(self, source: str, getter: Callable[[], MediaStreamTrack | None]) -> None:
        latest: list[av.VideoFrame] = []
        fresh = asyncio.Event()
        consumer = asyncio.get_running_loop().create_task(self._video_consumer(source, latest, fresh))
        try:
            track: MediaStreamTrack | None = None
            while True:
                track = await self._next_track(getter, track)
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    continue
                if not isinstance(frame, av.VideoFrame):
                    continue
                if latest:
                    self.video_dropped += 1
                latest[:] = [frame]  # keep only the newest
                fresh.set()
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)

    async def _video_consumer(self, source: str, latest: list[av.VideoFrame], fresh: asyncio.Event) -> None:
        interval = 1.0 / self._params.video_in_framerate
        next_due = 0.0
        while True:
            await fresh.wait()
            delay = next_due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # newer frames replace the waiting one meanwhile
            fresh.clear()
            if not latest:
                continue
            frame = latest.pop()
            next_due = max(next_due + interval, time.monotonic())
            image, size = frame_to_image(frame, self._params.video_in_format)
            self.video_frames += 1
            user_id = self._transport.connection.pc_id
            out = InputImageRawFrame(
                image=image, size=size, format=self._params.video_in_format, source=source, user_id=user_id
            )
            await self.push_frame(out, DOWNSTREAM)

    # ------------------------------------------------------------ receivers we do not read

    def _disable_unused_receivers(self) -> None:
        """Stop aiortc decoding media nobody reads (its track queue would grow without bound)."""
        pc = self._transport.connection.pc
        if pc is None:
            return
        for index, transceiver in enumerate(pc.getTransceivers()):
            wanted = self._params.audio_in_enabled if transceiver.kind == "audio" else self._params.video_in_enabled
            if index <= 2 and not wanted:
                transceiver.receiver._enabled = False


__all__ = ["LowLatencyAudioJitterBuffer", "SmallWebRTCInputTransport", "receiver_of", "tune_audio_receiver"]
