"""``PictureInPicture`` (``video.pip``): insets the bot's previous output picture into the next one."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from runner.frames import ImageRawFrame, OutputImageRawFrame
from runner.processors.video._image import U8, Color, clip_box, output_frame, place, resize_nearest, rgb, to_rgb
from runner.processors.video._transform import ImageTransform, ImageTransformParams

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]


class PictureInPicture(ImageTransform):
    """Remembers the last output picture it passed on and shows a small copy of it in the next one.

    The copy is scaled by ``scale`` of the current picture with nearest-neighbour sampling
    and framed by a ``border``. By default the remembered picture is the one before its
    inset was drawn; ``recursive: true`` remembers it with the inset (a tunnel of frames).
    The first picture goes on without an inset.
    """

    class Params(ImageTransformParams):
        """Picture-in-picture settings."""

        scale: float = Field(default=0.25, ge=0.1, le=0.5, description="Inset size as a fraction of the picture.")
        corner: Corner = Field(default="bottom-right", description="Which corner the inset sits in.")
        border: int = Field(default=2, ge=0, le=32, description="Border width around the inset in pixels.")
        border_color: Color = Field(default="white", description="Border colour ([r, g, b], '#rrggbb' or a name).")
        margin: int = Field(default=8, ge=0, le=512, description="Pixels between the inset and the picture's edges.")
        recursive: bool = Field(default=False, description="Remember pictures with their inset drawn in.")

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(params if params is not None else self.Params(), name=name)
        self._border_color = np.array(rgb(self.params.border_color), dtype=np.uint8)
        #: the last output picture (read-only RGB array), or None before the first
        self.remembered: U8 | None = None

    def inset_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the inset, border excluded, in a ``width`` x ``height`` picture."""
        p = self.params
        w, h = max(1, round(width * p.scale)), max(1, round(height * p.scale))
        x, y = place(p.corner, (w + 2 * p.border, h + 2 * p.border), (width, height), p.margin)
        return x + p.border, y + p.border, w, h

    def transform(self, frame: ImageRawFrame) -> OutputImageRawFrame:
        current = to_rgb(frame)
        previous = self.remembered
        if previous is None:
            out = output_frame(current)
            self.remembered = current
            return out
        picture = np.array(current, dtype=np.uint8, copy=True)
        height, width = picture.shape[:2]
        x, y, w, h = self.inset_box(width, height)
        b = self.params.border
        if b:
            frame_box = clip_box(x - b, y - b, w + 2 * b, h + 2 * b, width, height)
            if frame_box is not None:
                picture[frame_box[0], frame_box[1]] = self._border_color
        box = clip_box(x, y, w, h, width, height)
        if box is not None:
            rows, cols, inner_rows, inner_cols = box
            picture[rows, cols] = resize_nearest(previous, (w, h))[inner_rows, inner_cols]
        self.remembered = picture if self.params.recursive else current
        return output_frame(picture)


__all__ = ["PictureInPicture"]
