"""Running one event's action list: plain steps always, ``when`` steps first match wins, then ``otherwise``.

::

    on_client_message:
      - {action: log}                                          # always
      - {when: {type: get-count}, action: reply, data: {n: 3}}  # the first `when` that matches runs,
      - {when: {type: echo}, action: reply, data: $request.d}   # the later ones are skipped
      - otherwise:                                              # only when no `when` matched
          - {action: reply, data: {error: unknown request}}

Steps run in list order, each awaited; one that raises is logged and the rest still run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from runner.actions.base import Action, ActionContext
from runner.actions.when import Condition, EventMessage, event_message


@dataclass(frozen=True)
class Step:
    """One action of an event's list, with its ``when`` (or ``otherwise``) if it has one."""

    action: Action
    when: Condition | None = None
    otherwise: bool = False


async def run_steps(steps: Sequence[Step], ctx: ActionContext) -> None:
    """Run ``steps`` for one firing of ``ctx.event``."""
    matched = False
    message: EventMessage | None = None
    for step in steps:
        if step.when is not None:
            if matched:
                continue
            if message is None:
                message = event_message(ctx.event, ctx.args)
            if not step.when.matches(message):
                continue
            matched = True
        elif step.otherwise and matched:
            continue
        try:
            await step.action.run(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one failing action must not break the session (see runner.events)
            ctx.log.error(
                "action_failed",
                event_name=ctx.event,
                action=type(step.action).__name__,
                session_id=ctx.session_id,
                error=f"{type(exc).__name__}: {exc}",
                exc_info=exc,
            )


__all__ = ["Step", "run_steps"]
