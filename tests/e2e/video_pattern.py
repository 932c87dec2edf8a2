"""A camera test pattern that carries a frame id, and the checks run on what comes back.

The picture (640x480 by default) is a white rectangle on black, plus a row of cells in the
top-left corner that encode the frame id: 16 id bits and a 4-bit check, one cell each, a
cell holding a small white square for a 1 bit. The id survives VP8 and Sobel edge detection:
a filled square and its outline both raise the cell's mean brightness well above an empty
cell's, and the check rejects ids misread after heavy compression.

Used by ``tests/e2e/test_video.py`` and by the video benchmark's client (``bench/_video_client.py``).
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

WIDTH, HEIGHT = 640, 480
#: the white rectangle (x0, y0, x1, y1), exclusive ends; symmetric, so a mirror keeps it in place
RECT = (160, 120, 480, 360)
ID_BITS = 16
CHECK_BITS = 4
CELL = 20
SQUARE = 12
ORIGIN = (20, 20)  # top-left (x, y) of the first cell
#: a cell whose mean luma exceeds this holds a 1 (edges of a square: ~60, filled square: ~85)
CELL_THRESHOLD = 25.0
BLACK_Y, WHITE_Y = 16, 235  # limited-range luma
CLOCK_RATE = 90000
TIME_BASE = fractions.Fraction(1, CLOCK_RATE)

U8 = npt.NDArray[np.uint8]


def check_of(frame_id: int) -> int:
    """The 4-bit check of a 16-bit id: its nibbles xor-ed together."""
    return (frame_id ^ (frame_id >> 4) ^ (frame_id >> 8) ^ (frame_id >> 12)) & 0xF


def _bits(frame_id: int) -> list[int]:
    frame_id &= (1 << ID_BITS) - 1
    word = (frame_id << CHECK_BITS) | check_of(frame_id)
    total = ID_BITS + CHECK_BITS
    return [(word >> (total - 1 - i)) & 1 for i in range(total)]


def base_luma(width: int = WIDTH, height: int = HEIGHT) -> U8:
    """The pattern's luma without an id: the white rectangle on black."""
    luma = np.full((height, width), BLACK_Y, dtype=np.uint8)
    x0, y0, x1, y1 = RECT
    luma[y0:y1, x0:x1] = WHITE_Y
    return luma


def draw_id(luma: U8, frame_id: int) -> None:
    """Write ``frame_id`` into the corner cells of ``luma`` (in place)."""
    ox, oy = ORIGIN
    pad = (CELL - SQUARE) // 2
    for index, bit in enumerate(_bits(frame_id)):
        x = ox + index * CELL + pad
        luma[oy + pad : oy + pad + SQUARE, x : x + SQUARE] = WHITE_Y if bit else BLACK_Y


def pattern_luma(frame_id: int, width: int = WIDTH, height: int = HEIGHT) -> U8:
    """The whole pattern for one frame, as luma."""
    luma = base_luma(width, height)
    draw_id(luma, frame_id)
    return luma


def cell_means(luma: U8) -> npt.NDArray[np.float64]:
    """Mean brightness of each id cell."""
    ox, oy = ORIGIN
    cells = ID_BITS + CHECK_BITS
    strip = luma[oy : oy + CELL, ox : ox + cells * CELL].astype(np.float64)
    means: npt.NDArray[np.float64] = strip.reshape(CELL, cells, CELL).mean(axis=(0, 2))
    return means


def decode_id(luma: U8) -> int | None:
    """The frame id in a received picture's luma, or None if it cannot be read reliably."""
    if luma.shape[0] < ORIGIN[1] + CELL or luma.shape[1] < ORIGIN[0] + (ID_BITS + CHECK_BITS) * CELL:
        return None
    bits = [int(m > CELL_THRESHOLD) for m in cell_means(luma)]
    word = 0
    for bit in bits:
        word = (word << 1) | bit
    frame_id, check = word >> CHECK_BITS, word & ((1 << CHECK_BITS) - 1)
    return frame_id if check_of(frame_id) == check else None


def frame_luma(frame: av.VideoFrame) -> U8:
    """The luma plane of a decoded frame (converted to yuv420p when needed)."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    plane: U8 = np.asarray(frame.to_ndarray()[: frame.height], dtype=np.uint8)
    return plane


class PatternTrack(MediaStreamTrack):
    """A camera that sends the id pattern at ``framerate``, paced against the monotonic clock.

    ``sent[id]`` is the monotonic time the frame left ``recv()`` (was handed to the encoder).
    """

    kind = "video"

    def __init__(self, width: int = WIDTH, height: int = HEIGHT, framerate: float = 30.0) -> None:
        super().__init__()
        self.width, self.height, self.framerate = width, height, framerate
        self.sent: dict[int, float] = {}
        self._luma = base_luma(width, height)
        self._chroma = np.full((height // 2, width), 128, dtype=np.uint8)  # U and V planes, stacked
        self._index = 0
        self._t0: float | None = None

    async def recv(self) -> av.VideoFrame:
        """The next pattern frame, due at ``t0 + index / framerate``."""
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + self._index / self.framerate
        if due > now:
            await asyncio.sleep(due - now)
        frame_id = self._index & ((1 << ID_BITS) - 1)
        draw_id(self._luma, frame_id)
        frame = av.VideoFrame.from_ndarray(np.vstack([self._luma, self._chroma]), format="yuv420p")
        frame.pts = round(self._index * CLOCK_RATE / self.framerate)
        frame.time_base = TIME_BASE
        self._index += 1
        self.sent[frame_id] = time.monotonic()
        return frame


@dataclass
class Received:
    """One frame that came back: arrival time, size, decoded id (None if unreadable)."""

    at: float
    width: int
    height: int
    frame_id: int | None


def latency_of(received: Received, sent: dict[int, float]) -> float | None:
    """Seconds from sending a frame to receiving it back, or None when its id is unknown."""
    if received.frame_id is None or received.frame_id not in sent:
        return None
    return received.at - sent[received.frame_id]


def first_arrivals(frames: list[Received]) -> list[Received]:
    """Only the first arrival of each id (an output track may repeat a picture)."""
    seen: set[int] = set()
    out = []
    for frame in frames:
        if frame.frame_id is not None and frame.frame_id not in seen:
            seen.add(frame.frame_id)
            out.append(frame)
    return out


__all__ = [
    "HEIGHT",
    "RECT",
    "WIDTH",
    "PatternTrack",
    "Received",
    "base_luma",
    "cell_means",
    "check_of",
    "decode_id",
    "draw_id",
    "first_arrivals",
    "frame_luma",
    "latency_of",
    "pattern_luma",
]
