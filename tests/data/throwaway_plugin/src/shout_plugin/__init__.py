"""A throwaway third-party plugin used by the tests: upper-cases text frames."""

from __future__ import annotations

from runner.frames import Frame, FrameDirection, TextFrame
from runner.processors import FrameProcessor, ProcessorParams


class Shout(FrameProcessor):
    """Upper-cases every TextFrame and appends a suffix."""

    class Params(ProcessorParams):
        suffix: str = "!"
        """Appended to every text."""

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params or self.Params()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame):
            frame = TextFrame(text=frame.text.upper() + self.params.suffix)
        await self.push_frame(frame, direction)
