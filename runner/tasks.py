"""Small asyncio helpers shared by processors that own tasks."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has finished.

    Does nothing for None, a finished task or the calling task itself (a task that
    stops itself just returns). The task's own ``CancelledError`` is swallowed; the
    caller's, if the caller is being cancelled meanwhile, propagates.
    """
    if task is None or task.done() or task is asyncio.current_task():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
