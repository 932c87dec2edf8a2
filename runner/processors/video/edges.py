"""``EdgeDetect`` (``video.edges``): Sobel edge detection on the luminance, numpy only."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from runner.frames import ImageRawFrame, OutputImageRawFrame
from runner.processors.queue import Overflow
from runner.processors.video._image import U8, Color, output_frame, rgb, to_luma, to_rgb
from runner.processors.video._transform import ImageTransform, ImageTransformParams

#: largest Sobel magnitude of an 8-bit image (a full black/white step on both axes)
MAX_MAGNITUDE = 4 * 255 * math.sqrt(2)


def sobel_edges(luma: U8, threshold: float) -> npt.NDArray[np.bool_]:
    """Pixels whose Sobel gradient magnitude exceeds ``threshold``; the one-pixel border is never an edge.

    Separable 3x3 Sobel in int16 (smooth [1, 2, 1] one way, difference the other), then the
    squared magnitude in int32 against ``threshold**2``, so no square root is taken.
    """
    height, width = luma.shape
    mask = np.zeros((height, width), dtype=np.bool_)
    if height < 3 or width < 3:
        return mask
    y = luma.astype(np.int16)
    smooth_v = y[:-2] + y[1:-1] * np.int16(2) + y[2:]  # (h-2, w)
    gx = (smooth_v[:, 2:] - smooth_v[:, :-2]).astype(np.int32)
    smooth_h = y[:, :-2] + y[:, 1:-1] * np.int16(2) + y[:, 2:]  # (h, w-2)
    gy = (smooth_h[2:] - smooth_h[:-2]).astype(np.int32)
    gx *= gx
    gy *= gy
    gx += gy
    np.greater(gx, int(threshold * threshold), out=mask[1:-1, 1:-1])
    return mask


class EdgeDetect(ImageTransform):
    """Finds edges with a Sobel filter: white (or ``color``) edges on black, or drawn over the picture.

    Runs in its own task with a two-frame queue that drops the oldest frame when it falls
    behind, so a slow machine loses frames instead of building latency.
    """

    class Params(ImageTransformParams):
        """Edge detection settings."""

        threshold: float = Field(
            default=120.0,
            gt=0.0,
            le=round(MAX_MAGNITUDE),
            description="Sobel magnitude (0-1443 on 8-bit luminance) above which a pixel is an edge.",
        )
        mode: Literal["edges", "overlay"] = Field(
            default="edges", description="edges: edges on black; overlay: edges drawn over the picture."
        )
        color: Color | None = Field(
            default=None, description="Edge colour ([r, g, b], '#rrggbb' or a name); default white, green on overlay."
        )

    params: Params
    queue_size: ClassVar[int] = 2
    queue_overflow: ClassVar[Overflow] = "drop_oldest"

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(params if params is not None else self.Params(), name=name)
        p = self.params
        default = (0, 255, 0) if p.mode == "overlay" else (255, 255, 255)
        self._color = np.array(rgb(p.color) if p.color is not None else default, dtype=np.uint8)

    def transform(self, frame: ImageRawFrame) -> OutputImageRawFrame:
        mask = sobel_edges(to_luma(frame), self.params.threshold)
        return output_frame(paint(mask, self._color, to_rgb(frame) if self.params.mode == "overlay" else None))


def paint(mask: npt.NDArray[np.bool_], color: U8, under: U8 | None = None) -> U8:
    """An RGB picture: ``color`` where ``mask`` is set, ``under`` (or black) elsewhere.

    Works one channel at a time with 0/1 arithmetic: several times faster in numpy than
    boolean-mask assignment or broadcasting over a 3-wide last axis.
    """
    on = mask.view(np.uint8)
    out = np.empty((*mask.shape, 3), dtype=np.uint8)
    off = None if under is None else np.subtract(np.uint8(1), on)
    for channel in range(3):
        plane = out[..., channel]
        np.multiply(on, color[channel], out=plane)
        if under is not None and off is not None:
            plane += under[..., channel] * off
    return out


__all__ = ["MAX_MAGNITUDE", "EdgeDetect", "paint", "sobel_edges"]
