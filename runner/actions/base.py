"""The contract of an event-handler action (entry-point group ``pipeline_run.actions``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from runner.pipeline.task import PipelineTask


class ActionParams(BaseModel):
    """Base of every action's ``Params``: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


@dataclass
class ActionContext:
    """What an action may touch when its event fires.

    ``args`` are the event's own arguments after the emitter (for ``on_app_message``:
    the message); ``send_app_message`` is None when the session has no client channel.
    ``send_server_response(request_id, t, data)`` and ``send_error_response(request_id, error)``
    answer an RTVI ``client-message``; ``answered`` records that an action did, so a second
    ``reply`` to the same firing is refused.
    """

    event: str
    args: tuple[Any, ...] = ()
    task: PipelineTask | None = None
    send_app_message: Callable[[Any], object] | None = None
    session_id: str | None = None
    log: Any = field(default_factory=lambda: structlog.get_logger("runner.actions"))
    send_server_response: Callable[[str, str, Any], object] | None = None
    send_error_response: Callable[[str | None, str], object] | None = None
    answered: bool = False


class Action:
    """One step of an event handler declared in a spec: ``{action: <name>, ...params}``.

    Built as ``cls(params)``; :meth:`run` is awaited each time the event fires.
    """

    Params: ClassVar[type[ActionParams]] = ActionParams

    @classmethod
    def spec_issues(cls, params: ActionParams, event: str) -> list[tuple[tuple[str | int, ...], str]]:
        """Problems a spec can only show by where the action is used: ``(loc in the entry, message)``.

        Called once per entry when the spec loads; ``event`` is the event it is listed under.
        """
        return []

    def __init__(self, params: ActionParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    async def run(self, ctx: ActionContext) -> None:
        raise NotImplementedError
