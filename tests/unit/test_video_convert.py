"""Colour conversion and scaling with PyAV."""

from __future__ import annotations

import av
import numpy as np
import pytest

from runner.video import convert_image, frame_to_image, image_size, image_to_frame, pixel_format, scale_frame


def red_rgb(width: int, height: int) -> bytes:
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = 255
    return img.tobytes()


@pytest.mark.parametrize("fmt", ["RGB", "BGR", "RGBA", "gray", "yuv420p"])
def test_frame_to_every_format(fmt: str) -> None:
    frame = image_to_frame(red_rgb(64, 48), (64, 48), "RGB").reformat(format="yuv420p")
    image, size = frame_to_image(frame, fmt)
    assert size == (64, 48)
    assert len(image) == image_size(fmt, 64, 48)


def test_colours_survive_rgb_bgr() -> None:
    image, size = convert_image(red_rgb(32, 16), (32, 16), "RGB", "BGR")
    pixel = np.frombuffer(image, np.uint8).reshape(16, 32, 3)[5, 5]
    assert list(pixel) == [0, 0, 255]


def test_yuv_round_trip_keeps_colour() -> None:
    frame = image_to_frame(red_rgb(32, 32), (32, 32), "RGB").reformat(format="yuv420p")
    image, _ = frame_to_image(frame, "RGB")
    r, g, b = np.frombuffer(image, np.uint8).reshape(32, 32, 3)[16, 16]
    assert r > 200 and g < 60 and b < 60


def test_scaling() -> None:
    image, size = convert_image(red_rgb(64, 48), (64, 48), "RGB", "RGB", (32, 24))
    assert size == (32, 24) and len(image) == 32 * 24 * 3
    frame = scale_frame(av.VideoFrame(101, 77, "rgb24"), 101, 77)
    assert (frame.width, frame.height, frame.format.name) == (100, 76, "yuv420p")


def test_gray_and_rgba_input() -> None:
    gray = bytes(range(256)) * 4  # 32x32
    image, size = convert_image(gray, (32, 32), "gray", "RGBA")
    assert size == (32, 32) and len(image) == 32 * 32 * 4


def test_errors() -> None:
    with pytest.raises(ValueError, match="unsupported image format"):
        pixel_format("CMYK")
    with pytest.raises(ValueError, match="needs"):
        image_to_frame(b"123", (4, 4), "RGB")
    assert pixel_format("rgb") == "rgb24"


@pytest.mark.parametrize(("fmt", "width"), [("yuv420p", 64), ("RGB", 64), ("RGB", 63), ("gray", 63)])
def test_frame_to_image_matches_the_ndarray_bytes(fmt: str, width: int) -> None:
    rgb = np.random.default_rng(5).integers(0, 256, (48, width, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    image, size = frame_to_image(frame, fmt)  # planes joined directly, or (line padding) via to_ndarray
    expected = frame.reformat(width=size[0], height=size[1], format=pixel_format(fmt)).to_ndarray()
    assert image == np.ascontiguousarray(expected).tobytes()
