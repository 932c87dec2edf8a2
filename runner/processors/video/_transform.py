"""``ImageTransform``: the base of the video processors that turn one picture into another."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.frames import Frame, FrameDirection, ImageRawFrame, InputImageRawFrame, OutputImageRawFrame
from runner.processors.base import DOWNSTREAM, FrameProcessor, ProcessorParams

Source = Literal["camera", "screenVideo", "any"]


class ImageTransformParams(ProcessorParams):
    """Settings every image transform shares."""

    source: Source = Field(
        default="camera",
        description="Which user video to transform (camera, screenVideo or any); other input frames pass untouched.",
    )


class ImageTransform(FrameProcessor):
    """Transforms image frames travelling downstream into :class:`OutputImageRawFrame`s.

    Input frames (from the chosen ``source``) and output frames are handed to
    :meth:`transform`; the result goes on as an ``OutputImageRawFrame``, so
    ``camera -> transforms -> video out`` works. Every other frame passes unchanged.
    """

    Params = ImageTransformParams
    params: ImageTransformParams
    # Only pictures wait (and may be dropped); audio or text passing goes straight on.
    queued_frames = (ImageRawFrame,)

    def __init__(self, params: ImageTransformParams | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params if params is not None else self.Params()
        #: frames transformed so far
        self.frames = 0

    def wants(self, frame: ImageRawFrame) -> bool:
        """True if ``frame`` is one this processor transforms."""
        if isinstance(frame, InputImageRawFrame):
            return self.params.source == "any" or frame.source == self.params.source
        return isinstance(frame, OutputImageRawFrame)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is DOWNSTREAM and isinstance(frame, ImageRawFrame) and self.wants(frame):
            out = self.transform(frame)
            self.frames += 1
            await self.push_frame(out, direction)
            return
        await self.push_frame(frame, direction)

    def transform(self, frame: ImageRawFrame) -> OutputImageRawFrame:
        """Turn one picture into the output picture (raise ``ValueError`` on a bad format)."""
        raise NotImplementedError


__all__ = ["ImageTransform", "ImageTransformParams", "Source"]
