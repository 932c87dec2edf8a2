"""``TextOverlay`` (``video.overlay_text``): draws a caption, clock or frame counter on the video."""

from __future__ import annotations

import string
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator

from runner.frames import ImageRawFrame, OutputImageRawFrame
from runner.processors.video._font import render_text
from runner.processors.video._image import Color, clip_box, output_frame, place, rgb, writable_rgb
from runner.processors.video._transform import ImageTransform, ImageTransformParams

#: what ``text`` may contain in braces
PLACEHOLDERS = ("time", "date", "frame", "fps")

Position = Literal["top-left", "top-right", "bottom-left", "bottom-right", "top-center", "bottom-center", "center"]


class TextOverlay(ImageTransform):
    """Writes ``text`` into each picture with a built-in 5x7 pixel font scaled by ``scale``.

    ``text`` may hold ``{time}`` (HH:MM:SS), ``{date}`` (YYYY-MM-DD), ``{frame}`` (frames
    number, from 0) and ``{fps}`` (frames per second over the last second), with Python
    format specs such as ``{frame:06d}``; ``\\n`` starts a new line. Only pixels inside the
    text's box (text plus ``padding``) change.
    """

    class Params(ImageTransformParams):
        """Text overlay settings."""

        text: str = Field(default="{time}", description="Text to draw; placeholders {time} {date} {frame} {fps}.")
        position: Position = Field(default="top-left", description="Where the text box goes.")
        color: Color = Field(default="white", description="Text colour ([r, g, b], '#rrggbb' or a name).")
        background: Color | None = Field(
            default="black", description="Box colour behind the text; null draws the text straight on the picture."
        )
        scale: int = Field(default=2, ge=1, le=16, description="Integer size factor of the 5x7 font.")
        padding: int = Field(default=3, ge=0, le=64, description="Pixels of background around the text.")
        margin: int = Field(default=8, ge=0, le=512, description="Pixels between the box and the picture's edges.")

        @field_validator("text")
        @classmethod
        def _known_placeholders(cls, text: str) -> str:
            try:
                fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
            except ValueError as exc:
                raise ValueError(f"bad braces in text (write {{{{ and }}}} for literal braces): {exc}") from None
            for name in fields:
                if name not in PLACEHOLDERS:
                    raise ValueError(f"unknown placeholder {{{name}}} (known: {', '.join(PLACEHOLDERS)})")
            return text

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(params if params is not None else self.Params(), name=name)
        p = self.params
        self._color = np.array(rgb(p.color), dtype=np.uint8)
        self._background = None if p.background is None else np.array(rgb(p.background), dtype=np.uint8)
        self._static = "{" not in p.text.replace("{{", "")
        self._cached: tuple[str, npt.NDArray[np.bool_]] | None = None
        #: replaceable clocks (tests): wall time for {time}/{date}, monotonic for {fps}
        self.wallclock: Callable[[], float] = time.time
        self.monotonic: Callable[[], float] = time.monotonic
        self.fps = 0.0
        self._window_start: float | None = None
        self._window_frames = 0

    def current_text(self) -> str:
        """The text as it is drawn now (placeholders filled in)."""
        if self._static:
            return self.params.text.replace("{{", "{").replace("}}", "}")
        now = time.localtime(self.wallclock())
        return self.params.text.format(
            time=time.strftime("%H:%M:%S", now), date=time.strftime("%Y-%m-%d", now), frame=self.frames, fps=self.fps
        )

    def _measure_fps(self) -> None:
        now = self.monotonic()
        if self._window_start is None:
            self._window_start = now
        self._window_frames += 1
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            self.fps = (self._window_frames - 1) / elapsed
            self._window_start, self._window_frames = now, 1

    def _mask(self, text: str) -> npt.NDArray[np.bool_]:
        if self._cached is None or self._cached[0] != text:
            self._cached = (text, render_text(text, self.params.scale))
        return self._cached[1]

    def transform(self, frame: ImageRawFrame) -> OutputImageRawFrame:
        self._measure_fps()
        out = writable_rgb(frame)
        self.draw(out, self.current_text())
        return output_frame(out)

    def draw(self, out: npt.NDArray[np.uint8], text: str) -> None:
        """Draw ``text`` into the RGB array ``out`` in place (clipped to the picture)."""
        p = self.params
        mask = self._mask(text)
        height, width = out.shape[:2]
        box_w, box_h = mask.shape[1] + 2 * p.padding, mask.shape[0] + 2 * p.padding
        x, y = place(p.position, (box_w, box_h), (width, height), p.margin)
        if self._background is not None:
            box = clip_box(x, y, box_w, box_h, width, height)
            if box is not None:
                out[box[0], box[1]] = self._background
        text_box = clip_box(x + p.padding, y + p.padding, mask.shape[1], mask.shape[0], width, height)
        if text_box is not None:
            rows, cols, mask_rows, mask_cols = text_box
            out[rows, cols][mask[mask_rows, mask_cols]] = self._color


__all__ = ["PLACEHOLDERS", "TextOverlay"]
