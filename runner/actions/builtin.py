"""Built-in event-handler actions (entry-point group ``pipeline_run.actions``).

Text parameters are ``str.format`` templates over the event: ``{event}`` (its name),
``{args}`` / ``{args[0]}`` (its arguments), ``{arg}`` (the first argument or None) and
``{session_id}``. A template that fails to render is logged and used as raw text.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, JsonValue, field_validator, model_validator

from runner.actions.base import Action, ActionContext, ActionParams
from runner.frames import (
    EndFrame,
    FlushFrame,
    Frame,
    InterruptionFrame,
    OutputTransportMessageFrame,
    TextFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
)


def render(template: str, ctx: ActionContext) -> str:
    """Fill ``template`` from the event context; on any error warn and return it unchanged."""
    try:
        return template.format(
            event=ctx.event,
            args=ctx.args,
            arg=ctx.args[0] if ctx.args else None,
            session_id=ctx.session_id,
        )
    except (KeyError, IndexError, AttributeError, ValueError, TypeError) as exc:
        ctx.log.warning("action_template_failed", template=template, event_name=ctx.event, error=repr(exc))
        return template


async def _maybe_await(result: object) -> None:
    if inspect.isawaitable(result):
        await result


# ---------------------------------------------------------------- log


class LogAction(Action):
    """``log``: write a log line with the event's name and arguments."""

    class Params(ActionParams):
        """Log action settings."""

        message: str = Field(default="{event}", description="Message template, e.g. 'got {arg}'.")
        level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")

    params: Params

    def __init__(self, params: Params | None = None) -> None:
        super().__init__(params)

    async def run(self, ctx: ActionContext) -> None:
        message = render(self.params.message, ctx)
        method = getattr(ctx.log, self.params.level)
        method(message, event_name=ctx.event, args=list(ctx.args), session_id=ctx.session_id)


# ---------------------------------------------------------------- send_app_message


class SendAppMessageAction(Action):
    """``send_app_message``: send a JSON message to the client over the data channel."""

    class Params(ActionParams):
        """Send-app-message settings."""

        message: JsonValue = Field(description="Any JSON value, sent as is.")

    params: Params

    def __init__(self, params: Params | None = None) -> None:
        if params is None:
            raise ValueError("send_app_message needs a `message`")
        super().__init__(params)

    async def run(self, ctx: ActionContext) -> None:
        if ctx.send_app_message is None:
            ctx.log.warning("send_app_message_unavailable", event_name=ctx.event, reason="no client channel")
            return
        await _maybe_await(ctx.send_app_message(self.params.message))


# ---------------------------------------------------------------- push_frame

FrameName = Literal[
    "TextFrame",
    "TTSSpeakFrame",
    "TranscriptionFrame",
    "OutputTransportMessageFrame",
    "InterruptionFrame",
    "FlushFrame",
    "EndFrame",
]
_NEEDS_TEXT = {"TextFrame", "TTSSpeakFrame", "TranscriptionFrame"}


class PushFrameAction(Action):
    """``push_frame``: queue a frame into the pipeline, in order with the other frames."""

    class Params(ActionParams):
        """Push-frame settings."""

        frame: FrameName = Field(description="Which frame to push.")
        text: str | None = Field(default=None, description="Text (template) for text frames; the reason for EndFrame.")
        message: JsonValue = Field(default=None, description="Message for OutputTransportMessageFrame.")

        @model_validator(mode="after")
        def _fields_fit_frame(self) -> PushFrameAction.Params:
            if self.frame in _NEEDS_TEXT and self.text is None:
                raise ValueError(f"{self.frame} needs `text`")
            if self.frame == "OutputTransportMessageFrame" and self.message is None:
                raise ValueError("OutputTransportMessageFrame needs `message`")
            return self

    params: Params

    def __init__(self, params: Params | None = None) -> None:
        if params is None:
            raise ValueError("push_frame needs a `frame`")
        super().__init__(params)

    def build_frame(self, ctx: ActionContext) -> Frame:
        """The frame this action pushes, with its text rendered for ``ctx``."""
        p = self.params
        text = render(p.text, ctx) if p.text is not None else None
        if p.frame == "TextFrame":
            return TextFrame(text=text or "")
        if p.frame == "TTSSpeakFrame":
            return TTSSpeakFrame(text=text or "")
        if p.frame == "TranscriptionFrame":
            return TranscriptionFrame(text=text or "")
        if p.frame == "OutputTransportMessageFrame":
            return OutputTransportMessageFrame(message=p.message)
        if p.frame == "InterruptionFrame":
            return InterruptionFrame()
        if p.frame == "FlushFrame":
            return FlushFrame()
        return EndFrame(reason=text)

    async def run(self, ctx: ActionContext) -> None:
        if ctx.task is None:
            ctx.log.warning("push_frame_without_task", event_name=ctx.event, frame=self.params.frame)
            return
        await ctx.task.queue_frame(self.build_frame(ctx))


# ---------------------------------------------------------------- say / end / cancel


class SayAction(Action):
    """``say``: have the bot speak a text (queues a ``TTSSpeakFrame``)."""

    class Params(ActionParams):
        """Say settings."""

        text: str = Field(description="What to say (template).")

    params: Params

    def __init__(self, params: Params | None = None) -> None:
        if params is None:
            raise ValueError("say needs a `text`")
        super().__init__(params)

    async def run(self, ctx: ActionContext) -> None:
        if ctx.task is None:
            ctx.log.warning("say_without_task", event_name=ctx.event)
            return
        await ctx.task.queue_frame(TTSSpeakFrame(text=render(self.params.text, ctx)))


class EndAction(Action):
    """``end``: finish the pipeline gracefully, after what is already queued."""

    class Params(ActionParams):
        """End takes no parameters."""

    params: Params

    def __init__(self, params: Params | None = None) -> None:
        super().__init__(params)

    async def run(self, ctx: ActionContext) -> None:
        if ctx.task is None:
            ctx.log.warning("end_without_task", event_name=ctx.event)
            return
        await ctx.task.end()


class CancelAction(Action):
    """``cancel``: stop the pipeline now, dropping queued work."""

    class Params(ActionParams):
        """Cancel settings."""

        reason: str = Field(default="cancelled by {event}", description="Reason recorded in the log (template).")

    params: Params

    def __init__(self, params: Params | None = None) -> None:
        super().__init__(params)

    async def run(self, ctx: ActionContext) -> None:
        if ctx.task is None:
            ctx.log.warning("cancel_without_task", event_name=ctx.event)
            return
        await ctx.task.cancel(render(self.params.reason, ctx))


# ---------------------------------------------------------------- call

_TARGET = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class CallTargetError(ValueError):
    """A ``call`` action's target cannot be imported or is not callable."""


def resolve_target(target: str) -> Callable[..., Any]:
    """Import ``package.module:attr.path`` and return the callable it names."""
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise CallTargetError(f"call target {target!r}: cannot import {module_name!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CallTargetError(f"call target {target!r}: {module_name!r} has no attribute {attr_path!r}") from None
    if not callable(obj):
        raise CallTargetError(f"call target {target!r} is not callable ({type(obj).__name__})")
    return obj


class CallAction(Action):
    """``call``: call a Python function ``fn(ctx, **kwargs)``; awaited when it returns an awaitable.

    The target is imported when the action is built, so a typo fails early.
    """

    class Params(ActionParams):
        """Call settings."""

        target: str = Field(description="The function, as 'package.module:function'.")
        kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the call.")

        @field_validator("target")
        @classmethod
        def _target_shape(cls, value: str) -> str:
            if not _TARGET.match(value):
                raise ValueError(f"target must look like 'package.module:function', got {value!r}")
            return value

    params: Params

    def __init__(self, params: Params | None = None) -> None:
        if params is None:
            raise ValueError("call needs a `target`")
        super().__init__(params)
        self.function = resolve_target(params.target)

    async def run(self, ctx: ActionContext) -> None:
        await _maybe_await(self.function(ctx, **self.params.kwargs))


__all__ = [
    "CallAction",
    "CallTargetError",
    "CancelAction",
    "EndAction",
    "LogAction",
    "PushFrameAction",
    "SayAction",
    "SendAppMessageAction",
    "render",
    "resolve_target",
]
