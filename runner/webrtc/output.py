"""``SmallWebRTCOutputTransport``: bot audio, video and app messages out to the client.

Audio frames of any rate/layout are resampled to the track's rate and written with
backpressure: a write awaits until the :class:`~runner.webrtc.tracks.AudioOutputTrack`
holds at most 40 ms, so an ``InterruptionFrame`` (which clears the track) is heard within a
frame. ``BotStartedSpeakingFrame`` / ``BotStoppedSpeakingFrame`` go both ways when bot
audio starts and when the track has run dry for ``BOT_STOP_SECS``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import structlog

from runner.audio.resample import AudioNormalizer
from runner.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    FrameDirection,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    OutputTransportMessageFrame,
    StartFrame,
)
from runner.params import TransportParams
from runner.processors.base import DOWNSTREAM, UPSTREAM, FrameProcessor
from runner.tasks import cancel_and_wait
from runner.webrtc.tracks import AudioOutputTrack, VideoOutputTrack

if TYPE_CHECKING:
    from runner.webrtc.transport import SmallWebRTCTransport

log = structlog.get_logger("runner.webrtc.output")

#: Rate of the output track: Opus always encodes 48 kHz. Handing aiortc's encoder anything
#: else makes its internal resampler (libswresample, fixed 960-sample frames) hold each frame
#: back until the next one arrives: +20 ms on every bot sound. At 48 kHz it only re-layouts.
TRACK_SAMPLE_RATE = 48000
#: The bot counts as stopped once no audio has left the track for this long.
BOT_STOP_SECS = 0.3
#: How often the speaking watcher looks at the track (at most).
WATCH_STEP_SECS = 0.05
#: Longest a graceful end waits for queued bot audio to play out.
END_DRAIN_SECS = 5.0


class SmallWebRTCOutputTransport(FrameProcessor):
    """Writes bot media to the client's connection (last processor)."""

    def __init__(self, transport: SmallWebRTCTransport, params: TransportParams, *, name: str | None = None) -> None:
        super().__init__(name=name or "SmallWebRTCOutputTransport")
        self._transport = transport
        self._params = params
        self.audio_track: AudioOutputTrack | None = None
        self.video_track: VideoOutputTrack | None = None
        self._normalizer: AudioNormalizer | None = None
        self._speaking = False
        self._watcher: asyncio.Task[None | None] | None = None
        self.audio_dropped_frames = 0
        self.images_dropped = 0

    @property
    def sample_rate(self) -> int:
        """The pipeline's output audio rate (frames of other rates are resampled too)."""
        return self._params.audio_out_sample_rate or self._transport.start_frame.audio_out_sample_rate

    @property
    def track_sample_rate(self) -> int:
        """Rate of the audio handed to aiortc's encoder (see ``TRACK_SAMPLE_RATE``)."""
        return TRACK_SAMPLE_RATE

    # ------------------------------------------------------------ called by the transport

    def attach_tracks(self) -> None:
        """Create the output tracks (once per session) and hand them to the connection."""
        conn = self._transport.connection
        if self._params.audio_out_enabled:
            if self.audio_track is None or self.audio_track.readyState != "live":
                rate, channels = self.track_sample_rate, self._params.audio_out_channels
                self.audio_track = AudioOutputTrack(
                    rate, channels=channels, auto_silence=self._params.audio_out_auto_silence
                )
                self._normalizer = AudioNormalizer(rate, channels, chunk_ms=None)
            conn.replace_audio_track(self.audio_track)
        if self._params.video_out_enabled:
            if self.video_track is None or self.video_track.readyState != "live":
                p = self._params
                self.video_track = VideoOutputTrack(
                    p.video_out_width, p.video_out_height, p.video_out_framerate, is_live=p.video_out_is_live
                )
            conn.replace_video_track(self.video_track)

    def suspend(self) -> None:
        """The client vanished for now: drop queued bot audio and release a writer waiting for room."""
        if self.audio_track is not None:
            self.audio_track.clear()
        if self._normalizer is not None:
            self._normalizer.reset()

    def detach_tracks(self) -> None:
        """The session is over: end the tracks so no write waits on them."""
        for track in (self.audio_track, self.video_track):
            if track is not None:
                track.stop()

    # ------------------------------------------------------------ frames

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._transport.set_start_frame(frame)
            await self._transport.connect_client()
        elif isinstance(frame, OutputAudioRawFrame) and direction is DOWNSTREAM:
            await self.write_audio(frame)
            await self.push_frame(frame, direction)
        elif isinstance(frame, OutputImageRawFrame) and direction is DOWNSTREAM:
            self.write_image(frame)
            await self.push_frame(frame, direction)
        elif isinstance(frame, OutputTransportMessageFrame) and direction is DOWNSTREAM:
            if not self._transport.connection.send_app_message(frame.message):
                log.debug("app_message_dropped", processor=self.name)
        elif isinstance(frame, ErrorFrame) and direction is DOWNSTREAM:
            # Errors normally go upstream (the input transport tells the client); this one went down.
            self._transport.connection.send_rtvi_error(frame.error, frame.fatal)
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def write_audio(self, frame: OutputAudioRawFrame) -> bool:
        """Resample and queue one frame of bot audio; False when it was dropped."""
        track, normalizer = self.audio_track, self._normalizer
        if track is None or normalizer is None or not self._transport.connection.is_connected():
            self.audio_dropped_frames += 1
            return False
        pieces = normalizer.push_pcm(frame.audio, frame.sample_rate, frame.num_channels)
        if not pieces:
            return True
        if not self._speaking:
            await self._bot_started()
        ok = await track.write(b"".join(pieces))
        if not ok:
            self.audio_dropped_frames += 1
        return ok

    def write_image(self, frame: OutputImageRawFrame) -> None:
        """Show ``frame`` on the bot's video track (scaled to the configured size)."""
        track = self.video_track
        if track is None or not self._transport.connection.is_connected():
            self.images_dropped += 1
            return
        track.add_image(frame.image, frame.size, frame.format)

    # ------------------------------------------------------------ speaking state

    async def _bot_started(self) -> None:
        self._speaking = True
        await self._push_both(BotStartedSpeakingFrame())
        if self._watcher is None or self._watcher.done():
            self._watcher = self.create_task(self._watch_speaking(), name="speaking")

    async def _bot_stopped(self) -> None:
        if self._speaking:
            self._speaking = False
            await self._push_both(BotStoppedSpeakingFrame())

    async def _push_both(self, frame: Frame) -> None:
        await self.push_frame(frame, UPSTREAM)
        await self.push_frame(type(frame)(), DOWNSTREAM)

    async def _watch_speaking(self) -> None:
        """Report the bot stopped once the track has sent no bot audio for ``BOT_STOP_SECS``."""
        wait = WATCH_STEP_SECS
        while self._speaking:
            await asyncio.sleep(wait)
            wait = WATCH_STEP_SECS
            track = self.audio_track
            if track is None or track.buffered_bytes:
                continue
            last = track.last_audio_at
            quiet = time.monotonic() - last if last is not None else BOT_STOP_SECS
            if quiet >= BOT_STOP_SECS:
                await self._bot_stopped()
            else:  # nothing can change before the quiet time is up: one wake-up, not six
                wait = max(WATCH_STEP_SECS, BOT_STOP_SECS - quiet)

    # ------------------------------------------------------------ lifecycle hooks

    async def interrupted(self) -> None:
        if self.audio_track is not None:
            self.audio_track.clear()
        if self._normalizer is not None:
            self._normalizer.reset()
        await self._bot_stopped()

    async def stop(self, frame: EndFrame) -> None:
        await self._drain()
        if self._params.audio_out_end_silence_secs > 0 and self._transport.connection.is_connected():
            await asyncio.sleep(self._params.audio_out_end_silence_secs)
        await self._stop_watcher()
        await self._transport.disconnect_client()

    async def cancel(self, frame: CancelFrame) -> None:
        if self.audio_track is not None:
            self.audio_track.clear()
        await self._stop_watcher()
        await self._transport.disconnect_client()

    async def cleanup(self) -> None:
        await self._stop_watcher()
        await self._transport.disconnect_client()
        await super().cleanup()

    async def _drain(self) -> None:
        """Let queued bot audio play out (bounded) before a graceful end."""
        track = self.audio_track
        if track is None:
            return
        if self._normalizer is not None:
            for piece in self._normalizer.flush():
                await track.write(piece)
        await track.wait_drained(END_DRAIN_SECS)

    async def _stop_watcher(self) -> None:
        watcher, self._watcher = self._watcher, None
        await cancel_and_wait(watcher)


__all__ = ["BOT_STOP_SECS", "SmallWebRTCOutputTransport"]
