"""Named events with async handlers, as in ``@transport.event_handler("on_client_connected")``.

A handler that raises is logged (``event_handler_failed`` with the emitter, the event, the
handler and the traceback) and does not end anything: the other handlers of the event still
run and the session goes on. Handlers are the app's reactions to what happened, not part of
the media path; a processor that fails ends its session, a handler that fails does not.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from runner.tasks import TaskOwner

EventHandler = Callable[..., Awaitable[None] | None]

log = structlog.get_logger("runner.events")


class UnknownEventError(ValueError):
    """An event name the emitter does not declare."""


class EventEmitter:
    """Mix-in that declares event names and runs their handlers.

    Handlers receive the emitter first, then the event's own arguments. A handler that
    raises is logged and never breaks the emitter, the other handlers or the session.
    """

    def __init__(self) -> None:
        self._event_handlers: dict[str, list[EventHandler]] = {}
        self._handler_tasks = TaskOwner(type(self).__name__)

    def _register_event_handler(self, name: str) -> None:
        self._event_handlers.setdefault(name, [])

    @property
    def event_names(self) -> list[str]:
        """Every event this emitter can fire."""
        return sorted(self._event_handlers)

    def add_event_handler(self, name: str, handler: EventHandler) -> None:
        """Attach ``handler`` to the event ``name``."""
        if name not in self._event_handlers:
            known = ", ".join(self.event_names) or "none"
            raise UnknownEventError(f"{type(self).__name__} has no event {name!r} (known: {known})")
        self._event_handlers[name].append(handler)

    def event_handler(self, name: str) -> Callable[[EventHandler], EventHandler]:
        """Decorator form of :meth:`add_event_handler`."""

        def decorator(handler: EventHandler) -> EventHandler:
            self.add_event_handler(name, handler)
            return handler

        return decorator

    def has_event_handlers(self, name: str) -> bool:
        """True when something listens to ``name``."""
        return bool(self._event_handlers.get(name))

    async def _call_event_handler(self, name: str, *args: Any) -> None:
        """Run the handlers of ``name`` one after the other, here and now."""
        for handler in tuple(self._event_handlers.get(name, ())):
            try:
                result = handler(self, *args)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a user's handler must not break the emitter (module docstring)
                log.error(
                    "event_handler_failed",
                    emitter=getattr(self, "name", type(self).__name__),
                    event_name=name,
                    handler=getattr(handler, "__qualname__", repr(handler)),
                    error=f"{type(exc).__name__}: {exc}",
                    exc_info=exc,
                )

    def _spawn_event_handler(self, name: str, *args: Any) -> None:
        """Run the handlers of ``name`` in a background task (for hot paths)."""
        if not self._event_handlers.get(name):
            return
        self._handler_tasks.spawn(self._call_event_handler(name, *args), name=f"{name}-handlers")

    async def _wait_event_handlers(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - a grace period
        """Let spawned handlers finish (bounded), cancelling stragglers."""
        await self._handler_tasks.wait(timeout)
