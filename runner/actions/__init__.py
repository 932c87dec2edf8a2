"""Event-handler actions: the contract (:mod:`runner.actions.base`) and the built-ins."""

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

__all__ = [
    "Action",
    "ActionContext",
    "ActionParams",
    "CallAction",
    "CallTargetError",
    "CancelAction",
    "EndAction",
    "LogAction",
    "PushFrameAction",
    "SayAction",
    "SendAppMessageAction",
]
