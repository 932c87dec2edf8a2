"""Outbound media tracks: bot audio and bot video handed to aiortc's RTP senders.

aiortc's ``RTCRtpSender`` pulls frames by awaiting ``track.recv()`` in a loop, so the track
decides the pace. Both tracks pace against their ``clock`` (``time.monotonic`` unless a test
injects one, sleeping through its ``sleep``) from their first ``recv()`` with an absolute
schedule (frame *n* is due at ``t0 + n * period``), so timestamps never drift from the clock.

:class:`AudioOutputTrack` holds at most ``max_buffer_ms`` of audio: :meth:`~AudioOutputTrack.write`
waits for room (backpressure by ``await``), so an interruption only has that little to
discard. A sender stops its track when its peer connection closes, so a track serves one
peer connection; the transport makes a fresh one for a restarted connection.

When the connection tells the track that its sender negotiated Opus (:meth:`~AudioOutputTrack.set_send_codec`)
and the track runs at 48 kHz in 20 ms frames, the track encodes each frame itself (libopus,
in its own channel count) and hands aiortc the ``av.Packet``, which aiortc sends as is. Its own path would encode
stereo at 96 kbps through a resampler, on a thread-pool hop per frame, after a pure-Python
loop over every sample for the RTP audio-level header: about three times the CPU for mono
voice. (The one thing lost is that optional ``ssrc-audio-level`` header extension.)
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Awaitable, Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.codeccontext import AudioCodecContext

from runner.video.convert import image_to_frame, scale_frame

VIDEO_CLOCK_RATE = 90000
#: Bit rate of the track's own Opus encoder (mono voice; aiortc's would be 96 kbps stereo).
OPUS_BITRATE = 64000
#: ...and for stereo (what aiortc's own encoder uses).
OPUS_STEREO_BITRATE = 96000
OPUS_RATE = 48000
#: Window over which the audio track looks for a standing queue (see ``_shed_standing_audio``).
STANDING_WINDOW = 0.5
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
#: Phase lock (see ``AudioOutputTrack._note_phase``): slack kept between a real-time writer's
#: frame becoming complete and its send slot...
PHASE_MARGIN = 0.004
#: ...judged over this many frames...
PHASE_WINDOW = 25
#: ...and how long a send slot waits for a live writer's frame that is late, before silence.
PHASE_GRACE = 0.008
#: Takes in a row that find the writer's frame and leave nothing behind: the writer is on time again
#: and the silence debt (see ``AudioOutputTrack._repay_debt``) is forgotten.
DEBT_FORGET_TAKES = 5

#: Reads the time in seconds (monotonic).
Clock = Callable[[], float]
#: Waits that many seconds of the clock's time.
Sleep = Callable[[float], Awaitable[None]]


class AudioOutputTrack(MediaStreamTrack):
    """s16 audio at ``sample_rate`` in ``frame_ms`` frames, paced in real time.

    Mono by default; ``channels=2`` carries interleaved stereo (the Opus path then encodes
    stereo; aiortc's own PCMU/PCMA/G722 encoders downmix to mono, as those codecs are mono).

    * ``write(pcm)`` appends audio, awaiting until at most ``max_buffer_ms`` is buffered; it
      returns False (audio dropped) when the track was cleared or stopped meanwhile, or when
      nobody has pulled a frame for ``consumer_timeout`` seconds (no sender is attached).
    * ``clear()`` drops buffered audio and aborts pending writes (interruptions).
    * After a stall (busy event loop) the track sends the frames it owes back to back, with
      continuous timestamps, so the input backlog the stall created drains and latency
      does not ratchet up. Beyond ``max_lag`` the owed slots are skipped instead (the
      timestamps jump with the clock) rather than bursting seconds of audio.
    * Idle: silence frames (``auto_silence``) or no frames at all until audio arrives.
    * Phase lock (``phase_lock``, with ``auto_silence``): a writer that is itself real time (an
      echo, a streaming STT->TTS chain) hands over each frame at a fixed phase of the send
      schedule, so every frame would wait up to a whole frame in the buffer. The schedule is
      moved earlier until frames wait about ``PHASE_MARGIN``, and a slot whose frame is
      slightly late waits up to ``PHASE_GRACE`` for it (moving the schedule later) instead of
      sending silence. Timestamps stay continuous; a writer with a backlog (TTS) is not
      affected.
    """

    #: Follow a real-time writer's phase (see the class docstring).
    phase_lock: bool = True

    kind = "audio"

    def __init__(
        self,
        sample_rate: int = 24000,
        *,
        frame_ms: int = 20,
        channels: int = 1,
        max_buffer_ms: int = 40,
        auto_silence: bool = True,
        max_lag: float = 0.5,
        consumer_timeout: float = 0.5,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._sleep = sleep
        if sample_rate * frame_ms % 1000:
            raise ValueError(f"{frame_ms} ms is not a whole number of samples at {sample_rate} Hz")
        if channels not in (1, 2):
            raise ValueError(f"{channels} channels: the output track carries mono or stereo")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.channels = channels
        self._layout = "mono" if channels == 1 else "stereo"
        self.samples_per_frame = sample_rate * frame_ms // 1000
        #: bytes of one sample in every channel
        self.sample_bytes = 2 * channels
        self.frame_bytes = self.samples_per_frame * self.sample_bytes
        self.max_buffer_bytes = max(self.frame_bytes, sample_rate * max_buffer_ms // 1000 * self.sample_bytes)
        self.auto_silence = auto_silence
        self.max_lag = max_lag
        self.consumer_timeout = consumer_timeout
        self._period = frame_ms / 1000
        self._time_base = fractions.Fraction(1, sample_rate)
        self._buffer = bytearray()
        self._room = asyncio.Event()  # set when a frame left the buffer (or it was cleared)
        self._data = asyncio.Event()  # set when audio was written
        self._generation = 0
        self._t0: float | None = None
        self._index = 0
        self._created = clock()
        self._last_recv: float | None = None
        self.last_audio_at: float | None = None
        """Monotonic time the last frame carrying written audio was handed to the sender."""
        self.frames_sent = 0
        self.frames_skipped = 0
        self.frames_shed = 0
        self.bytes_dropped = 0
        self._window_start: float | None = None
        self._window_min = 0
        self._window_writes = 0
        self._window_waits = 0
        self._opus: AudioCodecContext | None = None
        self._encode_opus = False
        self._ready_at: float | None = None  # when the buffer last came to hold a full frame
        self._last_write_waited = True
        self._debt = 0  # silence frames sent while a real-time writer was late
        self._clean_takes = 0
        self._took_silence = False
        self._repaid = False
        self._last_write: float | None = None
        self._phase_frames = 0
        self._phase_min = math.inf
        self._phase_valid = True
        self.phase_shift_secs = 0.0
        """Net shift of the send schedule by phase lock (negative: earlier)."""

    # ------------------------------------------------------------ codec

    @property
    def encodes_opus(self) -> bool:
        """True when :meth:`recv` returns Opus packets rather than PCM frames."""
        return self._encode_opus

    def set_send_codec(self, mime_type: str | None) -> None:
        """The codec the sender negotiated: ``audio/opus`` at 48 kHz / 20 ms makes the track encode."""
        want = (
            mime_type is not None
            and mime_type.lower() == "audio/opus"
            and self.sample_rate == OPUS_RATE
            and self.frame_ms == 20
        )
        if want != self._encode_opus:
            self._encode_opus = want
            self._opus = None

    def _encode(self, frame: av.AudioFrame) -> av.Packet | None:
        if self._opus is None:
            codec = AudioCodecContext.create("libopus", "w")
            codec.bit_rate = OPUS_BITRATE if self.channels == 1 else OPUS_STEREO_BITRATE
            codec.format = "s16"
            codec.layout = self._layout
            codec.sample_rate = OPUS_RATE
            codec.time_base = self._time_base
            codec.options = {"application": "voip"}
            self._opus = codec
        packets = self._opus.encode(frame)
        if len(packets) != 1:
            return None
        packet: av.Packet = packets[0]
        packet.pts = frame.pts
        packet.time_base = self._time_base
        return packet

    # ------------------------------------------------------------ producer side

    @property
    def buffered_bytes(self) -> int:
        """Audio waiting to be sent."""
        return len(self._buffer)

    @property
    def buffered_secs(self) -> float:
        return len(self._buffer) / self.sample_bytes / self.sample_rate

    @property
    def started(self) -> bool:
        """True once a sender has pulled the first frame."""
        return self._t0 is not None

    def has_consumer(self) -> bool:
        """A sender pulled a frame within ``consumer_timeout`` (counted from creation at first)."""
        if self.readyState != "live":
            return False
        last = self._last_recv if self._last_recv is not None else self._created
        return self._clock() - last < self.consumer_timeout

    async def write(self, pcm: bytes) -> bool:
        """Queue s16 ``pcm`` (interleaved for stereo), waiting for room; False when (part of) it was dropped."""
        if extra := len(pcm) % self.sample_bytes:
            pcm = pcm[:-extra]
        generation = self._generation
        view = memoryview(pcm)
        for start in range(0, len(view), self.frame_bytes):
            piece = view[start : start + self.frame_bytes]
            self._window_writes += 1
            waits = len(self._buffer) + len(piece) > self.max_buffer_bytes
            self._window_waits += waits
            while len(self._buffer) + len(piece) > self.max_buffer_bytes:
                if not self.has_consumer() or not await self._wait_room(generation):
                    self.bytes_dropped += len(view) - start
                    return False
            if generation != self._generation or self.readyState != "live":
                self.bytes_dropped += len(view) - start
                return False
            self._buffer += piece
            now = self._clock()
            self._last_write = now
            self._last_write_waited = waits
            if self._ready_at is None and len(self._buffer) >= self.frame_bytes:
                self._ready_at = now
            self._data.set()
        return True

    async def _wait_room(self, generation: int) -> bool:
        self._room.clear()
        try:
            await asyncio.wait_for(self._room.wait(), timeout=self.consumer_timeout)
        except TimeoutError:
            if not self.has_consumer():
                return False
        return generation == self._generation and self.readyState == "live"

    async def wait_drained(self, limit_secs: float) -> bool:
        """Wait (at most ``limit_secs``) until every buffered byte was sent; True when drained."""
        deadline = self._clock() + limit_secs
        while self._buffer and self.has_consumer():
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), timeout=min(remaining, self.consumer_timeout))
            except TimeoutError:
                continue
        return not self._buffer

    def clear(self) -> int:
        """Drop buffered audio and abort waiting writes; return the bytes dropped."""
        dropped = len(self._buffer)
        self._buffer.clear()
        self._ready_at = None
        self._generation += 1
        self.bytes_dropped += dropped
        self._room.set()
        return dropped

    def stop(self) -> None:
        """End the track; pending and later writes return False."""
        self._generation += 1
        self._buffer.clear()
        self._room.set()
        self._data.set()
        super().stop()

    # ------------------------------------------------------------ consumer side (aiortc)

    async def recv(self) -> av.AudioFrame | av.Packet:
        """Next frame, due at ``t0 + index * frame``; silence when idle (``auto_silence``).

        An ``av.AudioFrame``, or its Opus ``av.Packet`` once :meth:`set_send_codec` chose Opus.
        """
        if self.readyState != "live":
            raise MediaStreamError
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        if not self._buffer and not self.auto_silence:
            while not self._buffer:
                self._last_recv = self._clock()
                self._data.clear()
                try:
                    await asyncio.wait_for(self._data.wait(), timeout=self.consumer_timeout / 2)
                except TimeoutError:
                    pass
                if self.readyState != "live":
                    raise MediaStreamError
            self._skip_to(self._clock())  # resume after a pause: no burst
        else:
            due = self._t0 + self._index * self._period
            if now - due > self.max_lag:
                self._skip_to(now)
        due = self._t0 + self._index * self._period
        delay = due - self._clock()
        if delay > 0:
            await self._sleep(delay)
        if self.readyState != "live":
            raise MediaStreamError
        if self.phase_lock and self.auto_silence:
            await self._wait_late_frame(due)
        self._last_recv = self._clock()
        self._note_phase(due)
        behind = self._clock() - due >= self._period
        frame = self._make_frame()
        self._repay_debt(behind)
        self._shed_standing_audio()
        self._after_take()
        self._index += 1
        self.frames_sent += 1
        self._room.set()
        if self._encode_opus:
            packet = self._encode(frame)
            if packet is not None:
                return packet
            self.set_send_codec(None)  # unexpected encoder output: let aiortc encode from now on
        return frame

    async def _wait_late_frame(self, due: float) -> None:
        """No full frame at its slot but the writer is live: wait (briefly) for it."""
        now = self._clock()
        last = self._last_write
        if len(self._buffer) >= self.frame_bytes or last is None or now - last > 2 * self._period:
            return
        deadline = due + PHASE_GRACE
        while len(self._buffer) < self.frame_bytes and self.readyState == "live":
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            self._data.clear()
            try:
                await asyncio.wait_for(self._data.wait(), timeout=remaining)
            except TimeoutError:
                return
        late = self._clock() - due
        if late > 0 and self._t0 is not None:
            self._t0 += late  # follow the writer: later slots from now on
            self.phase_shift_secs += late
            self._phase_valid = False

    def _note_phase(self, due: float) -> None:
        """Per take: track the slack a real-time writer leaves; move the schedule earlier.

        Judged per window of ``PHASE_WINDOW`` takes, only when every take found a frame that
        was completed after the previous take (no backlog, no underrun): then the smallest
        slack beyond ``PHASE_MARGIN`` is pure waiting, and the schedule moves that much
        earlier (at most half a frame per window).
        """
        if not self.phase_lock or not self.auto_silence:
            return
        ready = self._ready_at
        if ready is None:
            self._phase_valid = False
        else:
            self._phase_min = min(self._phase_min, due - ready)
        self._phase_frames += 1
        if self._phase_frames < PHASE_WINDOW:
            return
        if self._phase_valid and self._phase_min > PHASE_MARGIN and self._t0 is not None:
            shift = min(self._phase_min - PHASE_MARGIN, self._period / 2)
            self._t0 -= shift
            self.phase_shift_secs -= shift
        self._phase_frames = 0
        self._phase_min = math.inf
        self._phase_valid = True

    def _repay_debt(self, behind: bool) -> None:
        """Drop a frame of a backlog that stands behind silence this track sent while its writer was late.

        A real-time writer (an echo of the mic) whose audio is held up (a stalled loop, a
        network hiccup) leaves its send slots to silence; its delayed audio then arrives as a
        burst and, played at real time, would stand as a queue behind the writer for good
        (the writer blocks on this buffer, so that queue is upstream, out of sight of
        ``_shed_standing_audio``). Each such silence frame is a debt: while a backlog shows (a
        frame still buffered after a take), one frame of it is dropped per take until the debt
        is paid. Silence counts when the writer wrote within ``max_lag`` and either the slot
        was owed after a stall (``behind``) or its writes did not wait for room (a real-time
        writer, not TTS). ``DEBT_FORGET_TAKES`` on-time takes, or a writer silent for longer
        than ``max_lag``, forget the debt.
        """
        last = self._last_write
        recent = last is not None and self._clock() - last <= self.max_lag
        repaid, self._repaid = self._repaid, False
        if self._took_silence:
            if repaid:  # our own doing: the backlog is gone
                self._debt = 0
            elif recent and (behind or not self._last_write_waited):
                self._debt = min(self._debt + 1, round(self.max_lag / self._period))
            elif not recent:
                self._debt = 0
            self._clean_takes = 0
            return
        if len(self._buffer) >= self.frame_bytes:
            self._clean_takes = 0
            if self._debt > 0 and self._last_write_waited:  # the writer is blocked: the backlog is upstream
                del self._buffer[: self.frame_bytes]
                self._debt -= 1
                self._repaid = True
                self.frames_shed += 1
            return
        if not behind:
            self._clean_takes += 1
            if self._clean_takes >= DEBT_FORGET_TAKES:
                self._debt = 0

    def _after_take(self) -> None:
        if len(self._buffer) >= self.frame_bytes:
            self._ready_at = self._clock()
            self._phase_valid = False  # a backlog, not a phase: nothing to learn this window
        else:
            self._ready_at = None

    def _shed_standing_audio(self) -> None:
        """Drop one frame when a real-time writer keeps a standing queue (CoDel-like).

        Left in the buffer after each take, audio is latency. A writer faster than real time
        (TTS) blocks on a full buffer, and that is fine. But a writer that is exactly real
        time (an echo of the mic) never blocks, so after any transient the buffer can sit
        one frame deep forever. If every take in ``STANDING_WINDOW`` left a frame behind
        and most writes did not have to wait, that frame is late audio: drop it.
        """
        now = self._clock()
        level = len(self._buffer)
        if self._window_start is None:
            self._window_start, self._window_min = now, level
            return
        self._window_min = min(self._window_min, level)
        if now - self._window_start < STANDING_WINDOW:
            return
        if self._window_min >= self.frame_bytes and self._window_waits * 2 < self._window_writes:
            del self._buffer[: self.frame_bytes]
            self.frames_shed += 1
        self._window_start, self._window_min = now, len(self._buffer)
        self._window_writes = self._window_waits = 0

    def _skip_to(self, now: float) -> None:
        assert self._t0 is not None
        target = math.ceil((now - self._t0) / self._period - 1e-6)
        if target > self._index:
            self.frames_skipped += target - self._index
            self._index = target

    def _make_frame(self) -> av.AudioFrame:
        size = self.frame_bytes
        self._took_silence = not self._buffer
        if self._buffer:
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            if len(data) < size:
                data += bytes(size - len(data))
            self.last_audio_at = self._clock()
        else:
            data = bytes(size)
        frame = av.AudioFrame(format="s16", layout=self._layout, samples=self.samples_per_frame)
        frame.planes[0].update(data)
        frame.sample_rate = self.sample_rate
        frame.pts = self._index * self.samples_per_frame
        frame.time_base = self._time_base
        return frame


class VideoOutputTrack(MediaStreamTrack):
    """Bot video at ``width`` x ``height`` and ``framerate``.

    Not live: the latest image is repeated at the frame rate (black before the first).
    Live (``is_live``): each new image is sent once as it comes, no faster than the rate.
    """

    kind = "video"

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        framerate: int = 30,
        *,
        is_live: bool = False,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._sleep = sleep
        self.width = width - width % 2
        self.height = height - height % 2
        self.framerate = framerate
        self.is_live = is_live
        self._period = 1 / framerate
        self._frame: av.VideoFrame | None = None
        #: the current picture has gone to the encoder once (a repeat must be a copy, see recv)
        self._frame_sent = False
        self._fresh = asyncio.Event()
        self._t0: float | None = None
        self._index = 0
        self.frames_sent = 0

    def add_image(self, image: bytes, size: tuple[int, int], image_format: str = "RGB") -> None:
        """Replace the current picture (converted and scaled to the track's size).

        A ``yuv420p`` image of the track's size is copied into a frame as it is: no conversion.
        """
        self.add_frame(image_to_frame(image, size, image_format))

    def add_frame(self, frame: av.VideoFrame) -> None:
        """Replace the current picture with an ``av.VideoFrame`` (scaled to the track's size)."""
        self._frame = scale_frame(frame, self.width, self.height, "yuv420p")
        self._frame_sent = False
        self._fresh.set()

    def stop(self) -> None:
        self._fresh.set()
        super().stop()

    async def recv(self) -> av.VideoFrame:
        """Next picture, paced at ``framerate`` (live: waits for a new one)."""
        if self.readyState != "live":
            raise MediaStreamError
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + self._index * self._period
        if now - due > 0.5:  # long pause or stall: do not burst old frames
            self._index = math.ceil((now - self._t0) / self._period)
            due = self._t0 + self._index * self._period
        delay = due - now
        if delay > 0:
            await self._sleep(delay)
        if self.is_live:
            while not self._fresh.is_set():
                await self._fresh.wait()
            # the slot that is current now (not the next one: that would leave up to two periods
            # before the following frame may go, halving the rate when input is paced at it)
            self._index = max(self._index, math.floor((self._clock() - self._t0) / self._period))
        self._fresh.clear()
        if self.readyState != "live":
            raise MediaStreamError
        source = self._frame if self._frame is not None else self._black()
        if self._frame_sent:  # a repeat: a frame of its own, so the one sent before keeps its pts
            frame = av.VideoFrame.from_ndarray(source.to_ndarray(), format="yuv420p")
        else:  # a new picture goes as it is (aiortc encodes one frame at a time and keeps none)
            frame, self._frame_sent = source, True
        frame.pts = round(self._index * self._period * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        self._index += 1
        self.frames_sent += 1
        return frame

    def _black(self) -> av.VideoFrame:
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, value in zip(frame.planes, (16, 128, 128), strict=True):
            plane.update(bytes([value]) * plane.buffer_size)
        self._frame, self._frame_sent = frame, False
        return frame


__all__ = ["VIDEO_CLOCK_RATE", "AudioOutputTrack", "VideoOutputTrack"]
