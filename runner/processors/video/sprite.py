"""``Sprite`` (``video.sprite``): a still or an animation as the bot's video while nothing else is shown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import av
import numpy as np
import structlog
from pydantic import Field

from runner.frames import CancelFrame, EndFrame, Frame, FrameDirection, OutputImageRawFrame, StartFrame
from runner.processors.base import DOWNSTREAM, FrameProcessor, ProcessorParams
from runner.processors.video._image import U8, resize_nearest
from runner.tasks import cancel_and_wait

log = structlog.get_logger("runner.processors.video")

#: file names a folder animation is made of (sorted by name)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
#: refuse animations bigger than this once decoded
MAX_BYTES = 256 * 1024 * 1024

Dimension = Annotated[int, Field(ge=2, le=3840)]


def _decode(path: Path) -> list[U8]:
    try:
        with av.open(str(path)) as container:
            return [np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8) for frame in container.decode(video=0)]
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise ValueError(f"cannot decode image {str(path)!r}: {exc}") from exc


def load_pictures(path: Path, size: tuple[int, int] | None = None) -> tuple[list[bytes], tuple[int, int]]:
    """Decode an image file (every frame of an animated one) or a folder of images, sorted by name.

    Returns the pictures as packed RGB of one size (``size``, or else the first picture's) and that size.
    """
    if not path.exists():
        raise FileNotFoundError(f"sprite image not found: {str(path)!r}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {str(path)!r}")
    else:
        files = [path]
    pictures: list[bytes] = []
    total = 0
    for file in files:
        for array in _decode(file):
            if size is None:
                size = (array.shape[1], array.shape[0])
            picture = np.ascontiguousarray(resize_nearest(array, size)).tobytes()
            total += len(picture)
            if total > MAX_BYTES:
                limit = f"{MAX_BYTES >> 20} MB"
                raise ValueError(f"sprite {str(path)!r} is over {limit} decoded; use fewer or smaller images")
            pictures.append(picture)
    if not pictures or size is None:
        raise ValueError(f"no pictures could be decoded from {str(path)!r}")
    return pictures, size


class Sprite(FrameProcessor):
    """Shows an image, or a folder of images as an animation, whenever the bot has no other video.

    From a task of its own it pushes ``OutputImageRawFrame``s at ``fps``, paced against a
    monotonic clock. Output image frames coming from upstream pass through and pause it;
    it resumes ``idle_secs`` after the last one. Pictures are decoded with PyAV when the
    pipeline starts, so a missing or broken file fails the run at once, naming the path.
    """

    class Params(ProcessorParams):
        """Sprite settings."""

        path: Path = Field(description="Image file (PNG, JPEG, GIF...) or a folder of images played in name order.")
        fps: float = Field(default=10.0, gt=0.0, le=60.0, description="Pictures per second pushed while idle.")
        loop: bool = Field(default=True, description="Start the animation again at its end (else hold the last).")
        idle_secs: float = Field(
            default=1.0, ge=0.1, le=3600.0, description="Resume this long after the last upstream output picture."
        )
        size: tuple[Dimension, Dimension] | None = Field(
            default=None, description="Resize pictures to [width, height] (nearest neighbour); null keeps them."
        )

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if params is None:
            raise ValueError("Sprite needs params with a `path`")
        self.params = params
        self.pictures: list[bytes] = []
        self.picture_size = (0, 0)
        #: replaceable for tests: the pacing clock and sleep
        self.clock: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        #: pictures pushed so far
        self.emitted = 0
        self._position = 0
        self._last_upstream: float | None = None
        self._task: asyncio.Task[None | None] | None = None

    @property
    def showing(self) -> bool:
        """True while the sprite is the bot's video (no upstream pictures for ``idle_secs``)."""
        last = self._last_upstream
        return last is None or self.clock() - last >= self.params.idle_secs

    async def start(self, frame: StartFrame) -> None:
        p = self.params
        self.pictures, self.picture_size = await asyncio.to_thread(load_pictures, p.path, p.size)
        log.debug("sprite_loaded", processor=self.name, path=str(p.path), pictures=len(self.pictures))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is DOWNSTREAM and isinstance(frame, OutputImageRawFrame):
            self._last_upstream = self.clock()
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame) and self.pictures and self._task is None:
            self._task = self.create_task(self._run(), name="sprite")

    def next_picture(self) -> OutputImageRawFrame:
        """The next picture of the animation as a new frame (the bytes are shared)."""
        count = len(self.pictures)
        picture = self.pictures[min(self._position, count - 1)]
        self._position = (self._position + 1) % count if self.params.loop else min(self._position + 1, count)
        return OutputImageRawFrame(image=picture, size=self.picture_size, format="RGB")

    async def _run(self) -> None:
        period = 1.0 / self.params.fps
        started: float | None = None
        ticks = 0
        # A failure here is the task owner's: logged once, then a fatal error ends the session.
        while True:
            now = self.clock()
            if self._last_upstream is not None and now - self._last_upstream < self.params.idle_secs:
                started = None  # paused: sleep until the quiet time could be over
                await self.sleep(self._last_upstream + self.params.idle_secs - now)
                continue
            if started is None:
                started, ticks = now, 0
            await self.push_frame(self.next_picture(), DOWNSTREAM)
            self.emitted += 1
            ticks += 1
            delay = started + ticks * period - self.clock()
            if delay < -period:  # fell more than a picture behind: do not burst to catch up
                started, ticks, delay = self.clock(), 0, 0.0
            await self.sleep(max(0.0, delay))

    async def _stop_task(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def stop(self, frame: EndFrame) -> None:
        await self._stop_task()

    async def cancel(self, frame: CancelFrame) -> None:
        await self._stop_task()

    async def cleanup(self) -> None:
        await self._stop_task()
        await super().cleanup()


__all__ = ["IMAGE_SUFFIXES", "Sprite", "load_pictures"]
