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
from collections.abc import Callable, Coroutine
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
from runner.webrtc.aiortc_internals import (
    packet_payload,
    receiver_codecs,
    receiver_jitter_buffer,
    set_receiver_jitter_buffer,
)
from runner.webrtc.receivers import close_receiver, frames_dropped

if TYPE_CHECKING:
    from runner.webrtc.transport import SmallWebRTCTransport

log = structlog.get_logger("runner.webrtc.input")

CHUNK_MS = 20
#: Most 20 ms chunks waiting for the pipeline (1 s); past that the oldest is dropped and counted.
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
        data = packet_payload(packet)
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


def tune_audio_receiver(receiver: RTCRtpReceiver, sink: AudioSink | None = None) -> bool:
    """Give one aiortc audio receiver the low-latency jitter buffer; True if it changed.

    With ``sink``, Opus is decoded (mono, 48 kHz) in the buffer and handed to ``sink``
    instead of to the receiver's track; ``sink=None`` on a tuned receiver restores the track.
    """
    current = receiver_jitter_buffer(receiver)
    if isinstance(current, LowLatencyAudioJitterBuffer):
        current.sink = sink
        return False
    if not isinstance(current, JitterBuffer) or current.capacity != 16:
        return False  # not the audio buffer layout we know: leave it alone
    buffer = LowLatencyAudioJitterBuffer(receiver_codecs(receiver))
    buffer.sink = sink
    set_receiver_jitter_buffer(receiver, buffer)
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
    """Reads the client's media and app messages into the pipeline (first processor).

    Counters for metrics: ``audio_frames`` (chunks pushed), ``audio_dropped`` (chunks dropped
    because ``MAX_PENDING_CHUNKS`` were already waiting), ``receiver_frames_dropped`` (decoded
    frames a remote track dropped because this reader fell behind), ``video_frames`` and
    ``video_dropped`` (older pictures replaced by newer ones before conversion).
    A reader that fails (VAD, video conversion, anything) is logged with the session and ends
    the session: a fatal ``ErrorFrame`` goes upstream, never a session that keeps running deaf.
    """

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
        self._failed_reader: str | None = None
        self._reading: dict[str, RTCRtpReceiver] = {}
        self.audio_frames = 0
        self.audio_dropped = 0
        self._dropped_reported = 0
        self.video_frames = 0
        self.video_dropped = 0

    @property
    def sample_rate(self) -> int:
        """Rate of the ``InputAudioRawFrame``s this input produces."""
        return self._params.audio_in_sample_rate or self._transport.start_frame.audio_in_sample_rate

    @property
    def receiver_frames_dropped(self) -> int:
        """Decoded frames the tracks being read dropped because this input fell behind."""
        return sum(frames_dropped(receiver) for receiver in self._reading.values())

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
        if self._params.audio_in_enabled:
            self._spawn("audio", self._audio_loop())
        if self._params.video_in_enabled:
            for source, getter in (("camera", conn.video_input_track), ("screenVideo", conn.screen_video_input_track)):
                self._spawn(source, self._video_loop(source, getter))

    def tracks_changed(self) -> None:
        """A remote track started or the pc was replaced: readers re-check their tracks."""
        self._tracks_changed.set()

    async def stop_readers(self) -> None:
        """Stop reading media (idempotent); the receivers read so far stop decoding."""
        self._running = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for task, result in zip(tasks, results, strict=True):
                if isinstance(result, Exception):  # _supervise handles failures: this is a bug
                    self._log().error("input_reader_failed_on_stop", reader=task.get_name(), error=_describe(result))
        for receiver in self._reading.values():
            close_receiver(receiver)
        if self.audio_dropped != self._dropped_reported:
            self._dropped_reported = self.audio_dropped
            self._log().info("input_audio_dropped_total", chunks=self.audio_dropped)

    async def push_app_message(self, message: Any) -> None:
        """An app message from the client, as a frame."""
        if self.start_frame is not None:
            await self.push_frame(InputTransportMessageFrame(message=message), DOWNSTREAM)

    async def request_end(self) -> None:
        """The client asked the bot to leave (RTVI ``disconnect-bot``): end gracefully."""
        await self.push_frame(EndFrame(reason="client asked the bot to disconnect"), UPSTREAM)

    # ------------------------------------------------------------ reader tasks

    def _log(self) -> Any:
        return log.bind(pc_id=self._transport.connection.pc_id)

    def _spawn(self, reader: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._supervise(reader, coro), name=f"{self.name}-{reader}")
        self._tasks.append(task)

    async def _supervise(self, reader: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run one reader; its failure is logged and ends the session (a fatal ``ErrorFrame``)."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log().error("input_reader_failed", reader=reader, error=_describe(exc), exc_info=exc)
            if self._failed_reader is not None:
                return  # the session is already ending
            self._failed_reader = reader
            error = ErrorFrame(error=f"{reader} input failed: {_describe(exc)}", processor=self.name, exception=exc)
            await self.process_frame(error, UPSTREAM)  # as any upstream error here: the client hears of it too

    async def _next_track(self, getter: Callable[[], MediaStreamTrack | None], old: MediaStreamTrack | None) -> Any:
        """The current live track from ``getter`` that is not the (ended) ``old`` one."""
        while True:
            self._tracks_changed.clear()
            track = getter()
            if track is not None and track.readyState == "live" and (track is not old or old.readyState == "live"):
                return track
            await self._tracks_changed.wait()

    def _attach(self, reader: str, track: MediaStreamTrack) -> RTCRtpReceiver | None:
        """Note the receiver ``reader`` reads now; the one it read before stops decoding."""
        receiver = receiver_of(self._transport.connection.pc, track)
        old = self._reading.pop(reader, None)
        if old is not None and old is not receiver:
            close_receiver(old)
        if receiver is not None:
            self._reading[reader] = receiver
        return receiver

    # ------------------------------------------------------------ audio

    async def _audio_loop(self) -> None:
        """Pump: read decoded frames as they arrive, normalise, queue 20 ms chunks."""
        conn = self._transport.connection
        normalizer = AudioNormalizer(self.sample_rate, self._params.audio_in_channels, CHUNK_MS)
        vad = self._params.vad_analyzer
        if vad is not None and hasattr(vad, "set_sample_rate"):
            vad.set_sample_rate(self.sample_rate)
        pending: deque[tuple[bytes, float]] = deque()
        ready = asyncio.Event()
        self._spawn("audio-consumer", self._audio_consumer(pending, ready))
        track: MediaStreamTrack | None = None
        tuned: RTCRtpReceiver | None = None

        def deliver(frame: av.AudioFrame) -> None:
            now = time.monotonic()
            for chunk in normalizer.push_frame(frame):
                if len(pending) >= MAX_PENDING_CHUNKS:
                    pending.popleft()
                    self._count_dropped()
                pending.append((chunk, now))
            ready.set()

        try:
            while True:
                current = await self._next_track(conn.audio_input_track, track)
                if current is not track:
                    track = current
                    normalizer.reset()
                    if tuned is not None:
                        tune_audio_receiver(tuned, None)
                    receiver = self._attach("audio", track)
                    tuned = self._tune(track, receiver, deliver)
                    self._log().debug("audio_input_attached", track=track.id)
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

    def _count_dropped(self) -> None:
        self.audio_dropped += 1
        if self.audio_dropped == 1 or self.audio_dropped % MAX_PENDING_CHUNKS == 0:
            self._log().warning("input_audio_dropped", chunks=self.audio_dropped, queue=MAX_PENDING_CHUNKS)

    async def _audio_consumer(self, pending: deque[tuple[bytes, float]], ready: asyncio.Event) -> None:
        """Push queued chunks in order; nothing is dropped here.

        Pushing is a direct ``await`` through the pipeline, so an echo to the output track
        waits on the track's backpressure. A backlog left by a transient (a stalled event loop,
        a network burst) is worked off by the output track, which sends the frames it owes back
        to back and sheds a standing queue of bot audio, and a real-time relay (``audio.echo``)
        skips chunks that waited too long (each frame carries ``received_at``); only a queue that
        is really full (``MAX_PENDING_CHUNKS``) loses input audio here, and that is counted.
        """
        while True:
            while not pending:
                ready.clear()
                await ready.wait()
            await self._audio_chunk(*pending.popleft())

    def _tune(self, track: MediaStreamTrack, receiver: RTCRtpReceiver | None, sink: AudioSink) -> RTCRtpReceiver | None:
        """Low-latency buffer (decoding into ``sink``) for ``track``'s receiver; the receiver."""
        if not self.low_latency_audio or receiver is None:
            return None
        if tune_audio_receiver(receiver, sink):
            self._log().debug("audio_jitter_buffer_tuned", track=track.id)
        return receiver

    async def _audio_chunk(self, pcm: bytes, received_at: float | None = None) -> None:
        self.audio_frames += 1
        vad = self._params.vad_analyzer
        if vad is not None:
            await self._run_vad(vad, pcm)
        if self._params.audio_in_passthrough:
            channels = self._params.audio_in_channels
            frame = InputAudioRawFrame(
                audio=pcm, sample_rate=self.sample_rate, num_channels=channels, received_at=received_at
            )
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
        self._spawn(f"{source}-consumer", self._video_consumer(source, latest, fresh))
        track: MediaStreamTrack | None = None
        while True:
            current = await self._next_track(getter, track)
            if current is not track:
                track = current
                self._attach(source, track)
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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


__all__ = ["LowLatencyAudioJitterBuffer", "SmallWebRTCInputTransport", "receiver_of", "tune_audio_receiver"]
