"""``AudioEcho`` (``audio.echo``): sends the user's audio straight back."""

from __future__ import annotations

from pydantic import Field

from runner.frames import Frame, FrameDirection, InputAudioRawFrame, OutputAudioRawFrame
from runner.processors.base import FrameProcessor, ProcessorParams


class AudioEcho(FrameProcessor):
    """Turns every ``InputAudioRawFrame`` into an ``OutputAudioRawFrame`` with the same audio.

    Every other frame passes through unchanged.
    """

    class Params(ProcessorParams):
        """Echo settings."""

        pass_input: bool = Field(default=False, description="Also pass the input audio frame on (after its echo).")

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params if params is not None else self.Params()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame):
            echo = OutputAudioRawFrame(
                audio=frame.audio, sample_rate=frame.sample_rate, num_channels=frame.num_channels
            )
            await self.push_frame(echo, direction)
            if not self.params.pass_input:
                return
        await self.push_frame(frame, direction)
