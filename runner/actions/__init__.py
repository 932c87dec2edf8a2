"""Event-handler actions: the contract (:mod:`runner.actions.base`), the built-ins, ``reply``,
``when`` conditions (:mod:`runner.actions.when`) and how an event's list runs (:mod:`runner.actions.steps`)."""

from runner.actions.base import Action, ActionContext, ActionParams
from runner.actions.builtin import (
    CallAction,
    CallTargetError,
    CancelAction,
    EndAction,
    LogAction,
    PushFrameAction,
    SayAction,
    SendAppMessageAction,
)
from runner.actions.reply import ReplyAction
from runner.actions.steps import Step, run_steps
from runner.actions.when import Condition, WhenSpec

__all__ = [
    "Action",
    "ActionContext",
    "ActionParams",
    "CallAction",
    "CallTargetError",
    "CancelAction",
    "Condition",
    "EndAction",
    "LogAction",
    "PushFrameAction",
    "ReplyAction",
    "SayAction",
    "SendAppMessageAction",
    "Step",
    "WhenSpec",
    "run_steps",
]
