"""The one mechanism that gives a slow processor its own task and bounded queue.

A processor opts in by setting ``queue_size`` (and optionally ``queue_overflow``);
:class:`FrameWorker` then owns the queue and the task. System frames never enter it:
the processor handles them on arrival, so they overtake queued data. An interruption
follows :attr:`~runner.frames.Frame.on_interruption`: queued bot-bound frames (text, TTS
requests, output audio and images) are dropped; the user's own input (audio, images,
transcriptions) and control frames such as ``EndFrame`` stay in the queue, in order. Work in
progress is abandoned unless its frame says ``"finish"`` (user media, control frames).

The worker's task belongs to a :class:`~runner.tasks.TaskOwner` (the processor's): if the
loop itself fails, the owner logs it and the processor reports a fatal error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Literal

from runner.frames import DataFrame, Frame, FrameDirection
from runner.tasks import TaskOwner, cancel_and_wait

Overflow = Literal["block", "drop_oldest"]
Handler = Callable[[Frame, FrameDirection], Awaitable[None]]


class FrameQueue:
    """A bounded FIFO of (frame, direction) that can drop its bot-bound frames at once."""

    def __init__(self, maxsize: int, overflow: Overflow = "block") -> None:
        if maxsize < 1:
            raise ValueError("queue size must be at least 1")
        self.maxsize = maxsize
        self.overflow = overflow
        self.dropped = 0
        self._items: deque[tuple[Frame, FrameDirection]] = deque()
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, frame: Frame, direction: FrameDirection) -> None:
        """Append; when full either wait for room or drop the oldest data frame."""
        while len(self._items) >= self.maxsize:
            if self.overflow == "drop_oldest" and self._drop_oldest_data():
                break
            self._not_full.clear()
            await self._not_full.wait()
        self._items.append((frame, direction))
        self._not_empty.set()

    async def get(self) -> tuple[Frame, FrameDirection]:
        """Take the oldest item, waiting for one."""
        while not self._items:
            self._not_empty.clear()
            await self._not_empty.wait()
        item = self._items.popleft()
        self._not_full.set()
        return item

    def drop_interrupted(self) -> int:
        """Remove every queued frame an interruption drops (bot-bound data); return how many went."""
        kept = [item for item in self._items if item[0].on_interruption != "drop"]
        removed = len(self._items) - len(kept)
        self._items = deque(kept)
        self.dropped += removed
        self._not_full.set()
        return removed

    def _drop_oldest_data(self) -> bool:
        for index, (frame, _) in enumerate(self._items):
            if isinstance(frame, DataFrame):
                del self._items[index]
                self.dropped += 1
                return True
        return False


class FrameWorker:
    """Runs ``handler`` for each queued frame in a task of its own."""

    def __init__(
        self, name: str, handler: Handler, maxsize: int, overflow: Overflow, *, tasks: TaskOwner | None = None
    ) -> None:
        self.name = name
        self.queue = FrameQueue(maxsize, overflow)
        self._handler = handler
        self._tasks = tasks if tasks is not None else TaskOwner(name)
        self._task: asyncio.Task[None] | None = None
        self._current: Frame | None = None
        self._stopped = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the task (idempotent)."""
        if not self.running:
            self._stopped = False
            self._task = self._tasks.spawn(self._run(), name=f"{self.name}-worker")

    async def put(self, frame: Frame, direction: FrameDirection) -> None:
        await self.queue.put(frame, direction)

    async def interrupt(self) -> None:
        """Drop queued bot-bound frames and abandon the work in progress, unless it must finish."""
        self.queue.drop_interrupted()
        if self._current is not None and self._current.on_interruption != "finish" and self.running:
            await self.stop()
            self.start()

    async def stop(self) -> None:
        """Cancel the task and wait for it to go."""
        task, self._task = self._task, None
        self._current = None
        self._stopped = True
        await cancel_and_wait(task)

    async def _run(self) -> None:
        me = asyncio.current_task()
        # stop() called from inside the handler (an interruption arriving synchronously
        # from downstream) cannot cancel this task; a restarted worker then replaces it,
        # so leave as soon as the handler returns instead of competing for the queue.
        while not self._stopped and self._task is me:
            frame, direction = await self.queue.get()
            self._current = frame
            await self._handler(frame, direction)
            if self._task is me:
                self._current = None
