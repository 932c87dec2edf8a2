"""``Mirror`` (``video.mirror``): flips the picture horizontally, vertically or both."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from runner.frames import ImageRawFrame, OutputImageRawFrame
from runner.processors.video._image import output_frame, to_rgb
from runner.processors.video._transform import ImageTransform, ImageTransformParams


class Mirror(ImageTransform):
    """Flips each picture; ``horizontal`` (the default) is the familiar selfie mirror."""

    class Params(ImageTransformParams):
        """Mirror settings."""

        direction: Literal["horizontal", "vertical", "both"] = Field(
            default="horizontal", description="horizontal: left-right; vertical: upside down; both: rotate 180."
        )

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(params if params is not None else self.Params(), name=name)

    def transform(self, frame: ImageRawFrame) -> OutputImageRawFrame:
        array = to_rgb(frame)
        direction = self.params.direction
        if direction in ("vertical", "both"):
            array = array[::-1]  # whole rows move: tobytes() copies them fast
        if direction in ("horizontal", "both"):
            # a channel at a time is about twice as fast as copying the reversed 3-wide view
            flipped = np.empty(array.shape, dtype=np.uint8)
            for channel in range(3):
                flipped[..., channel] = array[:, ::-1, channel]
            array = flipped
        return output_frame(array)


__all__ = ["Mirror"]
