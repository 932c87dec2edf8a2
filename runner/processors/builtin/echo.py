"""``AudioEcho`` (``audio.echo``): sends the user's audio straight back."""

from __future__ import annotations

import time

import structlog
from pydantic import Field

from runner.frames import Frame, FrameDirection, InputAudioRawFrame, OutputAudioRawFrame
from runner.processors.base import FrameProcessor, ProcessorParams

log = structlog.get_logger("runner.processors.echo")


class AudioEcho(FrameProcessor):
    """Turns every ``InputAudioRawFrame`` into an ``OutputAudioRawFrame`` with the same audio.

    An echo is a real-time relay: audio that waited behind a stall (a busy event loop at
    session start, a burst after a network hiccup) would, played at real time, stay that late
    for good. So when a frame arrives more than ``max_lag_ms`` after the transport received it,
    the echo skips frames until one is again within ``catch_up_ms`` (the backlog is gone), and
    counts them in ``frames_skipped``. The transport itself never drops the user's audio for
    lateness; this is the echo's own choice. Every other frame passes through unchanged.
    """

    class Params(ProcessorParams):
        """Echo settings."""

        pass_input: bool = Field(default=False, description="Also pass the input audio frame on (after its echo).")
        max_lag_ms: int = Field(
            default=80, ge=0, le=5000, description="Start skipping audio that waited longer than this (0: never)."
        )
        catch_up_ms: int = Field(
            default=30, ge=0, le=5000, description="While skipping, echo again once audio waited at most this long."
        )

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params if params is not None else self.Params()
        self.frames_skipped = 0
        self._catching_up = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame):
            if not self._too_late(frame):
                echo = OutputAudioRawFrame(
                    audio=frame.audio, sample_rate=frame.sample_rate, num_channels=frame.num_channels
                )
                await self.push_frame(echo, direction)
            if not self.params.pass_input:
                return
        await self.push_frame(frame, direction)

    def _too_late(self, frame: InputAudioRawFrame) -> bool:
        if frame.received_at is None or self.params.max_lag_ms == 0:
            return False
        lag_ms = (time.monotonic() - frame.received_at) * 1000
        limit = self.params.catch_up_ms if self._catching_up else self.params.max_lag_ms
        if lag_ms <= limit:
            if self._catching_up:
                self._catching_up = False
                log.info("echo_caught_up", processor=self.name, frames_skipped=self.frames_skipped)
            return False
        if not self._catching_up:
            self._catching_up = True
            log.info("echo_skipping_late_audio", processor=self.name, lag_ms=round(lag_ms, 1))
        self.frames_skipped += 1
        return True
