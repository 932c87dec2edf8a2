"""Shared helpers of the video processors: frame <-> numpy, nearest-neighbour resize, colours.

Arrays are ``uint8`` and shaped ``(height, width, 3)`` (RGB) or ``(height, width)`` (luma).
Reading a frame wraps its bytes without copying where the format allows (RGB, gray, BGR
and RGBA are views; yuv420p is converted); the views are read-only, so transforms write
into arrays of their own.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Final

import numpy as np
import numpy.typing as npt
from pydantic import Field

from runner.frames import ImageRawFrame, OutputImageRawFrame

U8 = npt.NDArray[np.uint8]

#: channels of each packed format this package reads (case-insensitive names)
_CHANNELS: Final = {"rgb": 3, "bgr": 3, "rgba": 4, "gray": 1}
SUPPORTED_FORMATS: Final = ("RGB", "BGR", "RGBA", "gray", "yuv420p")

#: named colours accepted wherever a colour parameter is
NAMED_COLORS: Final[dict[str, tuple[int, int, int]]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "gray": (128, 128, 128),
    "orange": (255, 165, 0),
}
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
_COLOR_PATTERN = r"^(#?[0-9a-fA-F]{6}|" + "|".join(NAMED_COLORS) + r")$"

Channel = Annotated[int, Field(ge=0, le=255)]
#: a colour parameter: ``[r, g, b]``, ``"#rrggbb"`` (quote it in YAML) or a name such as ``white``
Color = tuple[Channel, Channel, Channel] | Annotated[str, Field(pattern=_COLOR_PATTERN)]


def rgb(color: Color) -> tuple[int, int, int]:
    """A colour parameter as an ``(r, g, b)`` tuple."""
    if isinstance(color, tuple):
        return color
    if color in NAMED_COLORS:
        return NAMED_COLORS[color]
    match = _HEX.match(color)
    if match is None:
        raise ValueError(f"not a colour: {color!r} (use [r, g, b], '#rrggbb' or one of {', '.join(NAMED_COLORS)})")
    value = int(match.group(1), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


# ---------------------------------------------------------------- frame -> array


def _checked(frame: ImageRawFrame, channels: int) -> U8:
    width, height = frame.size
    expected = width * height * channels
    if width <= 0 or height <= 0 or len(frame.image) != expected:
        raise ValueError(f"{frame.format} image of {width}x{height} needs {expected} bytes, got {len(frame.image)}")
    data: U8 = np.frombuffer(frame.image, dtype=np.uint8)
    return data.reshape((height, width, channels) if channels > 1 else (height, width))


def yuv_planes(frame: ImageRawFrame) -> tuple[U8, U8, U8]:
    """Read-only (Y, U, V) views of a yuv420p frame's bytes (chroma planes are half size, rounded up)."""
    width, height = frame.size
    cw, ch = (width + 1) // 2, (height + 1) // 2
    expected = width * height + 2 * cw * ch
    if width <= 0 or height <= 0 or len(frame.image) != expected:
        raise ValueError(f"yuv420p image of {width}x{height} needs {expected} bytes, got {len(frame.image)}")
    data: U8 = np.frombuffer(frame.image, dtype=np.uint8)
    y = data[: width * height].reshape(height, width)
    u = data[width * height : width * height + cw * ch].reshape(ch, cw)
    v = data[width * height + cw * ch :].reshape(ch, cw)
    return y, u, v


def _unsupported(frame: ImageRawFrame) -> ValueError:
    return ValueError(
        f"unsupported image format {frame.format!r} (supported: {', '.join(SUPPORTED_FORMATS)}); "
        "set the transport's video_in_format to RGB"
    )


def yuv420p_to_rgb(y: U8, u: U8, v: U8) -> U8:
    """BT.601 limited-range YUV 4:2:0 planes to an RGB array (chroma upsampled by repetition)."""
    height, width = y.shape
    c = (y.astype(np.float32) - 16.0) * 1.164
    d = u.repeat(2, axis=0).repeat(2, axis=1)[:height, :width].astype(np.float32) - 128.0
    e = v.repeat(2, axis=0).repeat(2, axis=1)[:height, :width].astype(np.float32) - 128.0
    out = np.empty((height, width, 3), dtype=np.float32)
    out[..., 0] = c + 1.596 * e
    out[..., 1] = c - 0.392 * d - 0.813 * e
    out[..., 2] = c + 2.017 * d
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def to_rgb(frame: ImageRawFrame) -> U8:
    """The frame as an ``(h, w, 3)`` RGB array: a read-only view for RGB, BGR and RGBA."""
    fmt = frame.format.lower()
    if fmt == "rgb":
        return _checked(frame, 3)
    if fmt == "bgr":
        return _checked(frame, 3)[..., ::-1]
    if fmt == "rgba":
        return _checked(frame, 4)[..., :3]
    if fmt == "gray":
        gray = _checked(frame, 1)
        return np.broadcast_to(gray[..., None], (*gray.shape, 3))
    if fmt == "yuv420p":
        return yuv420p_to_rgb(*yuv_planes(frame))
    raise _unsupported(frame)


def luma_of(array: U8) -> U8:
    """Luminance (BT.601 weights, integer maths) of an RGB array."""
    y = array[..., 0] * np.uint16(77)
    y += array[..., 1] * np.uint16(150)
    y += array[..., 2] * np.uint16(29)
    y += np.uint16(128)
    y >>= 8
    return y.astype(np.uint8)


def to_luma(frame: ImageRawFrame) -> U8:
    """The frame's luminance as an ``(h, w)`` array (a view for gray and yuv420p)."""
    fmt = frame.format.lower()
    if fmt == "gray":
        return _checked(frame, 1)
    if fmt == "yuv420p":
        return yuv_planes(frame)[0]
    return luma_of(to_rgb(frame))


def writable_rgb(frame: ImageRawFrame) -> U8:
    """A fresh, writable RGB copy of the frame."""
    return np.array(to_rgb(frame), dtype=np.uint8, order="C", copy=True)


def yuv_of(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited-range (Y, U, V) of an RGB colour: what libswscale makes of it (white -> 235, 128, 128)."""
    r, g, b = color
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return _byte(y), _byte(u), _byte(v)


def _byte(value: float) -> int:
    return min(255, max(0, round(value)))


# ---------------------------------------------------------------- array -> frame


def output_frame(array: U8) -> OutputImageRawFrame:
    """Wrap an ``(h, w, 3)`` RGB array as an :class:`OutputImageRawFrame`."""
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) RGB array, got shape {array.shape}")
    height, width = array.shape[:2]
    return OutputImageRawFrame(image=array.tobytes(), size=(width, height), format="RGB")


def yuv_buffer(width: int, height: int) -> tuple[U8, U8, U8, U8]:
    """A new packed yuv420p buffer of ``width`` x ``height`` and writable (Y, U, V) views into it."""
    cw, ch = (width + 1) // 2, (height + 1) // 2
    area, chroma = width * height, cw * ch
    data: U8 = np.empty(area + 2 * chroma, dtype=np.uint8)
    y = data[:area].reshape(height, width)
    u = data[area : area + chroma].reshape(ch, cw)
    v = data[area + chroma :].reshape(ch, cw)
    return data, y, u, v


def output_yuv_frame(data: U8, size: tuple[int, int]) -> OutputImageRawFrame:
    """Wrap a packed yuv420p buffer (see :func:`yuv_buffer`) of ``size``=(w, h) as an output frame."""
    return OutputImageRawFrame(image=data.tobytes(), size=size, format="yuv420p")


# ---------------------------------------------------------------- geometry


@lru_cache(maxsize=32)
def _nearest_indices(src: tuple[int, int], dst: tuple[int, int]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    (sw, sh), (dw, dh) = src, dst
    rows = (np.arange(dh, dtype=np.intp) * sh) // dh
    cols = (np.arange(dw, dtype=np.intp) * sw) // dw
    return rows, cols


def resize_nearest(array: U8, size: tuple[int, int]) -> U8:
    """Nearest-neighbour resize of an ``(h, w[, c])`` array to ``size``=(w, h); integer factors slice."""
    height, width = array.shape[:2]
    dw, dh = size
    if dw < 1 or dh < 1:
        raise ValueError(f"cannot resize to {dw}x{dh}")
    if (dw, dh) == (width, height):
        return array
    if width % dw == 0 and height % dh == 0:  # whole-number shrink: plain strided slicing
        return array[:: height // dh, :: width // dw]
    rows, cols = _nearest_indices((width, height), (dw, dh))
    return array[rows[:, None], cols]


CORNERS: Final = ("top-left", "top-right", "bottom-left", "bottom-right")
POSITIONS: Final = (*CORNERS, "top-center", "bottom-center", "center")


def place(position: str, box: tuple[int, int], frame: tuple[int, int], margin: int) -> tuple[int, int]:
    """Top-left ``(x, y)`` of a ``box``=(w, h) at ``position`` in a ``frame``=(w, h), ``margin`` from the edges."""
    (bw, bh), (fw, fh) = box, frame
    if position.endswith("left"):
        x = margin
    elif position.endswith("right"):
        x = fw - bw - margin
    else:
        x = (fw - bw) // 2
    if position.startswith("top"):
        y = margin
    elif position.startswith("bottom"):
        y = fh - bh - margin
    else:
        y = (fh - bh) // 2
    return x, y


def clip_box(x: int, y: int, w: int, h: int, width: int, height: int) -> tuple[slice, slice, slice, slice] | None:
    """Slices (frame rows, frame cols, box rows, box cols) of a box clipped to the frame, or None if outside."""
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1), slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)


__all__ = [
    "CORNERS",
    "NAMED_COLORS",
    "POSITIONS",
    "SUPPORTED_FORMATS",
    "U8",
    "Color",
    "clip_box",
    "luma_of",
    "output_frame",
    "output_yuv_frame",
    "place",
    "resize_nearest",
    "rgb",
    "to_luma",
    "to_rgb",
    "writable_rgb",
    "yuv420p_to_rgb",
    "yuv_buffer",
    "yuv_of",
    "yuv_planes",
]
