"""``reply``: answer the RTVI ``client-message`` that fired ``on_client_message``.

::

    on_client_message:
      - {action: reply, data: $request.d}                       # echo the request's data
      - {action: reply, type: count, data: {n: 3, of: "{$request.d.what}"}}

The answer is a ``server-response`` ``{t, d}`` carrying the request's id; the client's
``sendClientRequest()`` resolves with ``d``. ``data`` and ``type`` are templates
(:mod:`runner.actions.template`). A path the request does not have is answered with an
``error-response`` naming it, so the client's promise rejects at once with the reason.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import Field, JsonValue

from runner.actions.base import Action, ActionContext, ActionParams
from runner.actions.template import Template, TemplateError

EVENT = "on_client_message"


async def _maybe_await(result: object) -> None:
    if inspect.isawaitable(result):
        await result


class ReplyAction(Action):
    """``reply``: answer the client's request (RTVI ``server-response``), data templated from it."""

    class Params(ActionParams):
        """Reply settings."""

        data: JsonValue = Field(examples=["$request.d", {"count": 3, "for": "{$request.d.name}"}])
        """The response's `d`: any JSON; a string `$request.d` (or `$request`, `$request.t`, `$request.d.<path>`)
        is replaced by that part of the request, `{$request.d.<path>}` inside a longer string by its text."""
        type: str | None = None
        """The response's `t` (default: the request's `t`); may reference the request like `data`."""

    params: Params

    def __init__(self, params: Params | None = None) -> None:
        if params is None:
            raise ValueError("reply needs `data` (e.g. data: $request.d to echo the request)")
        super().__init__(params)
        self.data = Template(params.data)
        self.type = Template(params.type) if params.type is not None else None

    @classmethod
    def spec_issues(cls, params: ActionParams, event: str) -> list[tuple[tuple[str | int, ...], str]]:
        issues: list[tuple[tuple[str | int, ...], str]] = []
        if event != EVENT:
            issues.append(((), f"reply answers a client's request: list it under {EVENT}, not {event}"))
        for key in ("data", "type"):
            issues.extend(((key, *exc.loc), str(exc)) for exc in Template.problems(getattr(params, key, None)))
        return issues

    async def run(self, ctx: ActionContext) -> None:
        if ctx.event != EVENT or len(ctx.args) < 3:
            ctx.log.warning("reply_outside_client_message", event_name=ctx.event)
            return
        msg_type, payload, request_id = ctx.args[:3]
        if request_id is None:
            ctx.log.warning("reply_without_request_id", msg_type=msg_type, reason="the client expects no answer")
            return
        if ctx.answered:
            ctx.log.warning("reply_already_sent", msg_type=msg_type, request_id=request_id)
            return
        if ctx.send_server_response is None:
            ctx.log.warning("reply_unavailable", msg_type=msg_type, reason="no client channel")
            return
        ctx.answered = True
        try:
            data, answer_type = self.render(msg_type, payload)
        except TemplateError as exc:
            ctx.log.warning("reply_template_failed", msg_type=msg_type, request_id=request_id, error=str(exc))
            if ctx.send_error_response is not None:
                await _maybe_await(ctx.send_error_response(str(request_id), f"reply to {msg_type!r}: {exc}"))
            return
        await _maybe_await(ctx.send_server_response(str(request_id), answer_type, data))

    def render(self, msg_type: Any, payload: Any) -> tuple[Any, str]:
        """``(d, t)`` of the answer to the request ``{t: msg_type, d: payload}``; raises :class:`TemplateError`."""
        request = {"t": msg_type, "d": payload}
        data = self.data.render(request)
        answer_type = msg_type if self.type is None else self.type.render(request)
        if not isinstance(answer_type, str):
            raise TemplateError(f"type {self.params.type!r} gave {type(answer_type).__name__}, not a string")
        return data, answer_type


__all__ = ["ReplyAction"]
