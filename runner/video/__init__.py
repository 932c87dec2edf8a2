"""Video helpers: colour-format conversion and scaling (PyAV, no OpenCV)."""

from runner.video.convert import (
    PIXEL_FORMATS,
    convert_image,
    frame_to_image,
    image_size,
    image_to_frame,
    pixel_format,
    scale_frame,
)

__all__ = [
    "PIXEL_FORMATS",
    "convert_image",
    "frame_to_image",
    "image_size",
    "image_to_frame",
    "pixel_format",
    "scale_frame",
]
