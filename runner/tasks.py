"""Background tasks with an owner: nothing runs unreferenced, nothing fails unheard.

Every task the core starts goes through a :class:`TaskOwner`::

    tasks = TaskOwner("stt", on_failure=report)
    tasks.spawn(self._decode(), name="stt-decode")
    ...
    await tasks.cancel_all()

The owner keeps a strong reference until the task is done (asyncio only keeps weak
ones), and a task that raises is logged once (event ``task_failed`` with the owner, the
task name, the exception and its traceback, plus whatever session context structlog had
bound where the task was spawned: ``session_id``, ``pc_id``), then ``on_failure`` runs so
the owner can end its session cleanly instead of carrying on without that task.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog

log = structlog.get_logger("runner.tasks")

T = TypeVar("T")

#: Called with the failed task's name and its exception (may be a coroutine function).
FailureHandler = Callable[[str, Exception], Awaitable[None] | None]


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


class TaskOwner:
    """Spawns, references, supervises and cancels one object's background tasks."""

    def __init__(self, owner: str, *, on_failure: FailureHandler | None = None) -> None:
        self.owner = owner
        self.on_failure = on_failure
        #: tasks that ended with an exception so far
        self.failures = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        """Tasks still running."""
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T | None]:
        """Run ``coro`` in a task owned here; its result, or None if it failed."""
        task = asyncio.get_running_loop().create_task(self._supervise(coro, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before its first step never starts ``coro``: close it quietly.
        task.add_done_callback(lambda _task: coro.close())
        return task

    async def cancel_all(self) -> None:
        """Cancel every task and wait for them to go (except the calling task itself)."""
        me = asyncio.current_task()
        while pending := [task for task in self._tasks if task is not me and not task.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending)

    async def wait(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - a grace period, then cancel
        """Let the tasks finish (within ``timeout``), cancel the rest; True if all finished."""
        me = asyncio.current_task()
        pending = {task for task in self._tasks if task is not me}
        if not pending:
            return True
        _, still = await asyncio.wait(pending, timeout=timeout)
        for task in still:
            log.warning("task_cancelled_at_shutdown", owner=self.owner, task=task.get_name(), timeout_secs=timeout)
            await cancel_and_wait(task)
        return not still

    async def _supervise(self, coro: Coroutine[Any, Any, T], name: str) -> T | None:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            log.error(
                "task_failed",
                owner=self.owner,
                task=name,
                error=f"{type(exc).__name__}: {exc}",
                exc_info=exc,
            )
            await self._report(name, exc)
            return None

    async def _report(self, name: str, exc: Exception) -> None:
        if self.on_failure is None:
            return
        try:
            result = self.on_failure(name, exc)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception as handler_exc:  # the report itself failed: say so, there is nobody else to tell
            log.error(
                "task_failure_report_failed",
                owner=self.owner,
                task=name,
                error=f"{type(handler_exc).__name__}: {handler_exc}",
                exc_info=handler_exc,
            )


__all__ = ["FailureHandler", "TaskOwner", "cancel_and_wait"]
