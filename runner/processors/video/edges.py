"""``EdgeDetect`` (``video.edges``): Sobel edge detection on the luminance, numpy only."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from runner.frames import ImageRawFrame, OutputImageRawFrame
from runner.processors.queue import Overflow
from runner.processors.video._image import (
    U8,
    Color,
    output_frame,
    output_yuv_frame,
    rgb,
    to_luma,
    to_rgb,
    yuv_buffer,
    yuv_of,
    yuv_planes,
)
from runner.processors.video._transform import ImageTransform, ImageTransformParams

#: largest Sobel magnitude of an 8-bit image (a full black/white step on both axes)
MAX_MAGNITUDE = 4 * 255 * math.sqrt(2)
#: luma steps of limited-range (16-235) Y relative to full-range (0-255) luminance
LIMITED_RANGE = 219 / 255


class SobelScratch:
    """Buffers for :meth:`edges` on ``height`` x ``width`` luma, reused frame after frame.

    Fresh arrays per frame cost more than the arithmetic (every big allocation is new memory
    the kernel has to fault in); these are allocated once per picture size.
    """

    def __init__(self, height: int, width: int) -> None:
        self.shape = (height, width)
        self.mask = np.zeros((height, width), dtype=np.bool_)  # the border stays False
        inner = (max(height - 2, 0), max(width - 2, 0))
        self._y = np.empty((height, width), dtype=np.int16)
        self._smooth_v = np.empty((inner[0], width), dtype=np.int16)
        self._smooth_h = np.empty((height, inner[1]), dtype=np.int16)
        self._gx = np.empty(inner, dtype=np.int32)
        self._gy = np.empty(inner, dtype=np.int32)

    def edges(self, luma: U8, threshold: float) -> npt.NDArray[np.bool_]:
        """The edge mask of ``luma`` (see :func:`sobel_edges`), in a buffer the next call overwrites."""
        if luma.shape != self.shape:
            raise ValueError(f"scratch is for {self.shape} luma, got {luma.shape}")
        mask = self.mask
        if self.shape[0] < 3 or self.shape[1] < 3:
            return mask
        y, sv, sh, gx, gy = self._y, self._smooth_v, self._smooth_h, self._gx, self._gy
        np.copyto(y, luma)
        np.add(y[:-2], y[2:], out=sv)  # smooth [1, 2, 1] down the columns
        sv += y[1:-1]
        sv += y[1:-1]
        np.add(y[:, :-2], y[:, 2:], out=sh)  # and along the rows
        sh += y[:, 1:-1]
        sh += y[:, 1:-1]
        np.subtract(sv[:, 2:], sv[:, :-2], out=gx)  # int16 in, int32 out: squares reach 2 * 1020**2
        np.subtract(sh[2:], sh[:-2], out=gy)
        np.multiply(gx, gx, out=gx)
        np.multiply(gy, gy, out=gy)
        gx += gy
        np.greater(gx, int(threshold * threshold), out=mask[1:-1, 1:-1])
        return mask


def sobel_edges(luma: U8, threshold: float) -> npt.NDArray[np.bool_]:
    """Pixels whose Sobel gradient magnitude exceeds ``threshold``; the one-pixel border is never an edge.

    Separable 3x3 Sobel in int16 (smooth [1, 2, 1] one way, difference the other), then the
    squared magnitude in int32 against ``threshold**2``, so no square root is taken.
    """
    height, width = luma.shape
    return SobelScratch(height, width).edges(luma, threshold)


def _block_counts(on: U8, chroma_shape: tuple[int, int]) -> U8:
    """Set pixels (0-4) in each 2x2 block of a 0/1 mask: one per yuv420p chroma sample."""
    ch, cw = chroma_shape
    if on.shape != (2 * ch, 2 * cw):  # odd size: the last row/column of blocks is half empty
        padded = np.zeros((2 * ch, 2 * cw), dtype=np.uint8)
        padded[: on.shape[0], : on.shape[1]] = on
        on = padded
    counts: U8 = on[0::2, 0::2] + on[1::2, 0::2]
    counts += on[0::2, 1::2]
    counts += on[1::2, 1::2]
    return counts


def _blend_chroma(out: U8, under: U8 | int, target: int, counts: U8 | None) -> None:
    """``out`` = ``under`` moved towards ``target`` by counts/4 (the share of edge pixels in each block)."""
    if counts is None:
        out[...] = under
        return
    if isinstance(under, int):
        step = counts.astype(np.int16)
        step *= target - under
    else:
        step = np.subtract(np.int16(target), under, dtype=np.int16)
        step *= counts
    step += 2
    step >>= 2
    step += under
    out[...] = step


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
        color = rgb(p.color) if p.color is not None else default
        self._color = np.array(color, dtype=np.uint8)
        self._yuv = yuv_of(color)
        self._scratch: SobelScratch | None = None
        self._rgb: U8 | None = None

    def _edges(self, luma: U8, threshold: float) -> npt.NDArray[np.bool_]:
        scratch = self._scratch
        if scratch is None or scratch.shape != luma.shape:
            scratch = self._scratch = SobelScratch(*luma.shape)
        return scratch.edges(luma, threshold)

    def transform(self, frame: ImageRawFrame) -> OutputImageRawFrame:
        if frame.format.lower() == "yuv420p":
            return self._transform_yuv(frame)
        mask = self._edges(to_luma(frame), self.params.threshold)
        out = self._rgb
        if out is None or out.shape[:2] != mask.shape:
            out = self._rgb = np.empty((*mask.shape, 3), dtype=np.uint8)
        return output_frame(paint(mask, self._color, to_rgb(frame) if self.params.mode == "overlay" else None, out))

    def _transform_yuv(self, frame: ImageRawFrame) -> OutputImageRawFrame:
        """yuv420p in, yuv420p out: the Sobel reads the Y plane and the picture never becomes RGB.

        Edge pixels get the colour's Y; each chroma sample moves towards the colour's U/V by the
        share of edge pixels in its 2x2 block (what converting the RGB picture would give).
        """
        y, u, v = yuv_planes(frame)
        height, width = y.shape
        # Y is limited range (16-235): its steps are 219/255 of the full-range luma's the RGB path sees
        on = self._edges(y, self.params.threshold * LIMITED_RANGE).view(np.uint8)
        data, out_y, out_u, out_v = yuv_buffer(width, height)
        color_y, color_u, color_v = self._yuv
        if self.params.mode == "edges":  # black (16, 128, 128) under the edges
            np.multiply(on, np.uint8((color_y - 16) & 255), out=out_y)  # uint8 wraps: 16 + k or 16 + 0
            out_y += np.uint8(16)
            under_u: U8 | int = 128
            under_v: U8 | int = 128
        else:
            np.subtract(np.uint8(1), on, out=out_y)
            out_y *= y
            out_y += on * np.uint8(color_y)
            under_u, under_v = u, v
        flat = self.params.mode == "edges" and color_u == 128 and color_v == 128
        counts = None if flat else _block_counts(on, out_u.shape)
        _blend_chroma(out_u, under_u, color_u, counts)
        _blend_chroma(out_v, under_v, color_v, counts)
        return output_yuv_frame(data, (width, height))


def paint(mask: npt.NDArray[np.bool_], color: U8, under: U8 | None = None, out: U8 | None = None) -> U8:
    """An RGB picture: ``color`` where ``mask`` is set, ``under`` (or black) elsewhere.

    Works one channel at a time with 0/1 arithmetic: several times faster in numpy than
    boolean-mask assignment or broadcasting over a 3-wide last axis. ``out`` (an
    ``(h, w, 3)`` uint8 array) is written and returned if given.
    """
    on = mask.view(np.uint8)
    if out is None:
        out = np.empty((*mask.shape, 3), dtype=np.uint8)
    off = None if under is None else np.subtract(np.uint8(1), on)
    for channel in range(3):
        plane = out[..., channel]
        np.multiply(on, color[channel], out=plane)
        if under is not None and off is not None:
            plane += under[..., channel] * off
    return out


__all__ = ["MAX_MAGNITUDE", "EdgeDetect", "SobelScratch", "paint", "sobel_edges"]
