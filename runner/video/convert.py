"""Colour conversion and scaling between PyAV ``VideoFrame``s and raw image bytes.

Image formats use the frame vocabulary's names (``RGB``, ``BGR``, ``RGBA``, ``gray``,
``yuv420p``); everything goes through PyAV/libswscale, no OpenCV.
"""

from __future__ import annotations

import av
import numpy as np

#: frame-vocabulary image format -> PyAV pixel format
PIXEL_FORMATS: dict[str, str] = {
    "RGB": "rgb24",
    "BGR": "bgr24",
    "RGBA": "rgba",
    "gray": "gray",
    "yuv420p": "yuv420p",
}


_BY_LOWER = {name.lower(): fmt for name, fmt in PIXEL_FORMATS.items()}


def pixel_format(image_format: str) -> str:
    """PyAV pixel format for an image format name (case-insensitive)."""
    fmt = _BY_LOWER.get(image_format.lower())
    if fmt is None:
        known = ", ".join(PIXEL_FORMATS)
        raise ValueError(f"unsupported image format {image_format!r} (known: {known})")
    return fmt


def _even(value: int) -> int:
    return max(2, value - value % 2)


def image_size(image_format: str, width: int, height: int) -> int:
    """Bytes of a tightly packed image."""
    fmt = pixel_format(image_format)
    if fmt == "yuv420p":
        return width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)
    return width * height * {"rgb24": 3, "bgr24": 3, "rgba": 4, "gray": 1}[fmt]


def frame_to_image(
    frame: av.VideoFrame,
    image_format: str = "RGB",
    size: tuple[int, int] | None = None,
) -> tuple[bytes, tuple[int, int]]:
    """Convert (and optionally scale to ``size``=(w, h)) a frame; return (bytes, (w, h))."""
    fmt = pixel_format(image_format)
    width, height = size if size is not None else (frame.width, frame.height)
    if fmt == "yuv420p":
        width, height = _even(width), _even(height)
    if frame.format.name != fmt or frame.width != width or frame.height != height:
        frame = frame.reformat(width=width, height=height, format=fmt)
    packed = _packed_bytes(frame, fmt)
    if packed is not None:
        return packed, (width, height)
    array = frame.to_ndarray()
    return np.ascontiguousarray(array).tobytes(), (width, height)


def _packed_bytes(frame: av.VideoFrame, fmt: str) -> bytes | None:
    """The frame's planes joined in one copy, or None if a plane has padding at its line ends."""
    width, height = frame.width, frame.height
    shapes: tuple[tuple[int, int], ...]  # (bytes per line, lines) of each plane
    if fmt == "yuv420p":
        cw, ch = (width + 1) // 2, (height + 1) // 2
        shapes = ((width, height), (cw, ch), (cw, ch))
    else:
        shapes = ((width * {"rgb24": 3, "bgr24": 3, "rgba": 4, "gray": 1}[fmt], height),)
    planes = frame.planes
    if len(planes) != len(shapes):
        return None
    for plane, (line, rows) in zip(planes, shapes, strict=True):
        if plane.line_size != line or plane.buffer_size != line * rows:
            return None
    return b"".join(planes)


def image_to_frame(image: bytes, size: tuple[int, int], image_format: str = "RGB") -> av.VideoFrame:
    """Wrap tightly packed image bytes of ``size``=(w, h) in an ``av.VideoFrame``."""
    fmt = pixel_format(image_format)
    width, height = size
    expected = image_size(image_format, width, height)
    if len(image) != expected:
        raise ValueError(f"{image_format} image of {width}x{height} needs {expected} bytes, got {len(image)}")
    data: np.ndarray = np.frombuffer(image, dtype=np.uint8)
    array: np.ndarray
    if fmt == "yuv420p":
        if width % 2 or height % 2:
            raise ValueError("yuv420p images need an even width and height")
        array = data.reshape(height * 3 // 2, width)
    elif fmt == "gray":
        array = data.reshape(height, width)
    else:
        array = data.reshape(height, width, 4 if fmt == "rgba" else 3)
    return av.VideoFrame.from_ndarray(array, format=fmt)


def scale_frame(frame: av.VideoFrame, width: int, height: int, pixel_fmt: str = "yuv420p") -> av.VideoFrame:
    """Scale/convert a frame for an encoder (``yuv420p`` needs even dimensions)."""
    if pixel_fmt == "yuv420p":
        width, height = _even(width), _even(height)
    if frame.width == width and frame.height == height and frame.format.name == pixel_fmt:
        return frame
    return frame.reformat(width=width, height=height, format=pixel_fmt)


def convert_image(
    image: bytes,
    size: tuple[int, int],
    image_format: str,
    to_format: str,
    to_size: tuple[int, int] | None = None,
) -> tuple[bytes, tuple[int, int]]:
    """Convert raw image bytes to another format and/or size."""
    return frame_to_image(image_to_frame(image, size, image_format), to_format, to_size)


__all__ = [
    "PIXEL_FORMATS",
    "convert_image",
    "frame_to_image",
    "image_size",
    "image_to_frame",
    "pixel_format",
    "scale_frame",
]
