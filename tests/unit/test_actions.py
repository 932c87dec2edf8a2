"""Built-in event-handler actions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from runner.actions import (
    ActionContext,
    CallAction,
    CallTargetError,
    CancelAction,
    EndAction,
    LogAction,
    PushFrameAction,
    SayAction,
    SendAppMessageAction,
)
from runner.frames import (
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputTransportMessageFrame,
    StartFrame,
    TextFrame,
    TTSSpeakFrame,
)
from runner.pipeline import Pipeline, PipelineTask
from runner.plugins import PluginRegistry
from runner.processors.builtin import Passthrough

CALLS: list[tuple[Any, ...]] = []


def record_call(ctx: ActionContext, **kwargs: Any) -> None:
    CALLS.append(("sync", ctx.event, kwargs))


async def record_call_async(ctx: ActionContext, **kwargs: Any) -> None:
    await asyncio.sleep(0)
    CALLS.append(("async", ctx.event, kwargs))


NOT_CALLABLE = 42


class FakeTask:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.ended = False
        self.cancel_reason: str | None = None

    async def queue_frame(self, frame: Frame) -> None:
        self.frames.append(frame)

    async def end(self) -> None:
        self.ended = True

    async def cancel(self, reason: str = "cancelled") -> None:
        self.cancel_reason = reason


def ctx(event: str = "on_app_message", *args: Any, task: Any = None, send: Any = None) -> ActionContext:
    return ActionContext(event=event, args=args, task=task, send_app_message=send, session_id="pc-1")


def test_entry_points() -> None:
    registry = PluginRegistry.discover()
    for name, cls in {
        "log": LogAction,
        "send_app_message": SendAppMessageAction,
        "push_frame": PushFrameAction,
        "say": SayAction,
        "end": EndAction,
        "cancel": CancelAction,
        "call": CallAction,
    }.items():
        assert registry.action(name) is cls


async def test_log_renders_template() -> None:
    action = LogAction(LogAction.Params(message="{event}: {args[0]} from {session_id}", level="warning"))
    with structlog.testing.capture_logs() as logs:
        await action.run(ctx("on_app_message", {"hi": 1}))
    assert logs[0]["event"] == "on_app_message: {'hi': 1} from pc-1"
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["event_name"] == "on_app_message"
    assert logs[0]["args"] == [{"hi": 1}]


async def test_bad_template_warns_and_uses_raw_text() -> None:
    action = LogAction(LogAction.Params(message="got {args[3]} {nope"))
    with structlog.testing.capture_logs() as logs:
        await action.run(ctx("on_x", "a"))
    assert logs[0]["event"] == "action_template_failed"
    assert logs[1]["event"] == "got {args[3]} {nope"


async def test_send_app_message_sync_async_and_missing() -> None:
    sent: list[Any] = []

    async def send_async(message: Any) -> None:
        sent.append(("async", message))

    action = SendAppMessageAction(SendAppMessageAction.Params(message={"type": "hello", "n": [1, 2]}))
    await action.run(ctx(send=lambda m: sent.append(("sync", m))))
    await action.run(ctx(send=send_async))
    assert sent == [("sync", {"type": "hello", "n": [1, 2]}), ("async", {"type": "hello", "n": [1, 2]})]
    with structlog.testing.capture_logs() as logs:
        await action.run(ctx())
    assert logs[0]["event"] == "send_app_message_unavailable"


async def test_push_frame_builds_frames() -> None:
    task = FakeTask()
    await PushFrameAction(PushFrameAction.Params(frame="TextFrame", text="hi {arg}")).run(ctx("e", "bob", task=task))
    await PushFrameAction(PushFrameAction.Params(frame="InterruptionFrame")).run(ctx(task=task))
    message = PushFrameAction.Params(frame="OutputTransportMessageFrame", message={"a": 1})
    await PushFrameAction(message).run(ctx(task=task))
    await PushFrameAction(PushFrameAction.Params(frame="EndFrame", text="bye")).run(ctx(task=task))
    assert isinstance(task.frames[0], TextFrame) and task.frames[0].text == "hi bob"
    assert isinstance(task.frames[1], InterruptionFrame)
    assert isinstance(task.frames[2], OutputTransportMessageFrame) and task.frames[2].message == {"a": 1}
    assert isinstance(task.frames[3], EndFrame) and task.frames[3].reason == "bye"


def test_push_frame_validation() -> None:
    with pytest.raises(ValidationError, match="needs `text`"):
        PushFrameAction.Params(frame="TTSSpeakFrame")
    with pytest.raises(ValidationError, match="needs `message`"):
        PushFrameAction.Params(frame="OutputTransportMessageFrame")
    with pytest.raises(ValidationError):
        PushFrameAction.Params.model_validate({"frame": "StartFrame"})


async def test_say_end_cancel() -> None:
    task = FakeTask()
    await SayAction(SayAction.Params(text="Hello {arg}!")).run(ctx("on_client_connected", "you", task=task))
    await EndAction().run(ctx(task=task))
    await CancelAction().run(ctx("on_client_closed", task=task))
    assert isinstance(task.frames[0], TTSSpeakFrame) and task.frames[0].text == "Hello you!"
    assert task.ended
    assert task.cancel_reason == "cancelled by on_client_closed"


async def test_actions_without_task_warn() -> None:
    with structlog.testing.capture_logs() as logs:
        await SayAction(SayAction.Params(text="x")).run(ctx())
        await EndAction().run(ctx())
        await CancelAction().run(ctx())
        await PushFrameAction(PushFrameAction.Params(frame="FlushFrame")).run(ctx())
    assert [entry["log_level"] for entry in logs] == ["warning"] * 4


async def test_say_and_end_on_a_real_task() -> None:
    task = PipelineTask(Pipeline([Passthrough()]))
    reached: list[Frame] = []
    task.add_event_handler("on_frame_reached_downstream", lambda _t, f: reached.append(f))
    runner = asyncio.ensure_future(task.run())
    await SayAction(SayAction.Params(text="hi")).run(ctx(task=task))
    await EndAction().run(ctx(task=task))
    await asyncio.wait_for(runner, 2)
    assert [type(f) for f in reached] == [StartFrame, TTSSpeakFrame]
    assert task.finish_reason == "ended"


async def test_call_sync_and_async() -> None:
    CALLS.clear()
    sync = CallAction(CallAction.Params(target=f"{__name__}:record_call", kwargs={"x": 1}))
    asynchronous = CallAction(CallAction.Params(target=f"{__name__}:record_call_async"))
    await sync.run(ctx("on_a"))
    await asynchronous.run(ctx("on_b"))
    assert CALLS == [("sync", "on_a", {"x": 1}), ("async", "on_b", {})]


def test_call_target_validation() -> None:
    for bad in ["nocolon", "a.b:", ":f", "a b:c", "a:b:c", "1mod:f"]:
        with pytest.raises(ValidationError, match="package.module:function"):
            CallAction.Params(target=bad)
    with pytest.raises(CallTargetError, match="cannot import 'no_such_module_xyz'"):
        CallAction(CallAction.Params(target="no_such_module_xyz:f"))
    with pytest.raises(CallTargetError, match="has no attribute 'missing'"):
        CallAction(CallAction.Params(target=f"{__name__}:missing"))
    with pytest.raises(CallTargetError, match="not callable"):
        CallAction(CallAction.Params(target=f"{__name__}:NOT_CALLABLE"))
    assert CallAction(CallAction.Params(target="os.path:join")).function is __import__("os").path.join


def test_params_schema_and_extra_keys() -> None:
    assert "message" in LogAction.Params.model_json_schema()["properties"]
    with pytest.raises(ValidationError):
        SayAction.Params.model_validate({"text": "x", "voice": "y"})
