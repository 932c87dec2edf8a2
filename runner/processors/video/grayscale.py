"""``Grayscale`` (``video.grayscale``): drops the colour, keeping the luminance."""

from __future__ import annotations

import numpy as np

from runner.frames import ImageRawFrame, OutputImageRawFrame
from runner.processors.video._image import output_frame, to_luma
from runner.processors.video._transform import ImageTransform, ImageTransformParams


class Grayscale(ImageTransform):
    """Turns each picture grey (BT.601 luminance): an RGB frame with R = G = B."""

    class Params(ImageTransformParams):
        """Grayscale settings."""

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(params if params is not None else self.Params(), name=name)

    def transform(self, frame: ImageRawFrame) -> OutputImageRawFrame:
        luma = to_luma(frame)
        out = np.empty((*luma.shape, 3), dtype=np.uint8)
        for channel in range(3):
            out[..., channel] = luma
        return output_frame(out)


__all__ = ["Grayscale"]
