"""Failures inside a pipeline: each one logged once, reported upstream, and a fatal one ends the run."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import structlog
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from runner.events import EventEmitter
from runner.frames import ErrorFrame, Frame, FrameDirection, TextFrame
from runner.pipeline import Pipeline, PipelineTask
from runner.processors.base import DOWNSTREAM, UPSTREAM, FrameProcessor, ProcessorParams, secret_values
from runner.testing import run_processor


class Recorder(FrameProcessor):
    """Records (frame, direction) and passes everything on."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.seen: list[tuple[Frame, FrameDirection]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        self.seen.append((frame, direction))
        await self.push_frame(frame, direction)

    def errors(self) -> list[ErrorFrame]:
        return [f for f, d in self.seen if isinstance(f, ErrorFrame) and d is UPSTREAM]

    def texts(self) -> list[str]:
        return [f.text for f, d in self.seen if isinstance(f, TextFrame) and d is DOWNSTREAM]


class KeyParams(ProcessorParams):
    api_key: SecretStr | None = None
    tokens: list[SecretStr] = []


class Worker(FrameProcessor):
    """On ``TextFrame('task')`` starts a task of its own that raises; ``'warn'`` reports a non-fatal error."""

    Params: ClassVar[type[ProcessorParams]] = KeyParams
    queue_size: ClassVar[int] = 8

    def __init__(self, params: KeyParams | None = None, *, name: str | None = None, message: str = "boom") -> None:
        super().__init__(name=name)
        self.params = params or KeyParams()
        self.message = message

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame) and frame.text == "task":
            self.create_task(self._explode(), name="explode")
        elif isinstance(frame, TextFrame) and frame.text == "raise":
            raise ValueError(self.message)
        elif isinstance(frame, TextFrame) and frame.text == "warn":
            await self.push_error(f"could not do it: {self.message}", fatal=False)
        await self.push_frame(frame, direction)

    async def _explode(self) -> None:
        await asyncio.sleep(0)
        raise RuntimeError(self.message)


def _errors_logged(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["log_level"] in ("error", "critical")]


async def _run(*processors: FrameProcessor, frames: list[Frame], end: bool) -> tuple[PipelineTask, list[ErrorFrame]]:
    task = PipelineTask(Pipeline(list(processors)))
    seen: list[ErrorFrame] = []
    task.add_event_handler("on_pipeline_error", lambda _task, frame: seen.append(frame))
    await task.queue_frames(frames)
    if end:
        await task.end()
    await asyncio.wait_for(task.run(), 10)
    return task, seen


async def test_a_processor_task_that_raises_ends_the_pipeline_and_is_logged_once() -> None:
    top, worker, bottom = Recorder("top"), Worker(name="stt"), Recorder("bottom")
    with structlog.testing.capture_logs() as logs:
        # no EndFrame: only the failure can end this run
        task, reported = await _run(top, worker, bottom, frames=[TextFrame("task"), TextFrame("after")], end=False)
    assert task.finish_reason == "error in stt"
    assert task.error is not None and task.error.fatal and task.error.processor == "stt"
    assert task.error.error == "RuntimeError: boom"
    assert isinstance(task.error.exception, RuntimeError)
    assert reported == [task.error]  # on_pipeline_error, once
    assert top.errors() == [task.error]  # it went upstream past the processors above
    assert bottom.errors() == []
    errors = _errors_logged(logs)
    assert [(e["event"], e["owner"], e["task"]) for e in errors] == [("task_failed", "stt", "stt-explode")]
    assert errors[0]["error"] == "RuntimeError: boom" and isinstance(errors[0]["exc_info"], RuntimeError)


async def test_process_frame_failure_is_logged_once() -> None:
    with structlog.testing.capture_logs() as logs:
        run = await run_processor(Worker(name="tts", message="bad voice"), [TextFrame("raise")])
    assert run.error is not None and run.error.error == "ValueError: bad voice"
    errors = _errors_logged(logs)
    assert [(e["event"], e["processor"]) for e in errors] == [("processor_failed", "tts")]


async def test_a_non_fatal_error_is_reported_and_the_pipeline_goes_on() -> None:
    top, worker, bottom = Recorder("top"), Worker(name="llm", message="HTTP 500"), Recorder("bottom")
    with structlog.testing.capture_logs() as logs:
        frames: list[Frame] = [TextFrame("warn"), TextFrame("next"), TextFrame("warn"), TextFrame("last")]
        task, reported = await _run(top, worker, bottom, frames=frames, end=True)
    assert task.finish_reason == "ended" and task.error is None
    assert [(e.error, e.fatal, e.processor) for e in reported] == [("could not do it: HTTP 500", False, "llm")] * 2
    assert top.errors() == reported
    assert bottom.texts() == ["warn", "next", "warn", "last"]
    warnings = [e for e in logs if e["event"] == "processor_error"]
    assert len(warnings) == 2 and {e["log_level"] for e in warnings} == {"warning"}
    assert _errors_logged(logs) == []


class FeedBreaker(FrameProcessor):
    """Raises out of ``queue_frame`` itself for text, which no processor hook catches: the feeder fails."""

    async def queue_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        if isinstance(frame, TextFrame) and direction is DOWNSTREAM:
            raise OSError("queue broke")
        await super().queue_frame(frame, direction)


async def test_a_failing_feeder_ends_the_run_through_the_error_path() -> None:
    bottom = Recorder("bottom")
    with structlog.testing.capture_logs() as logs:
        # first in line: nothing above it catches what its queue_frame raises
        task, reported = await _run(FeedBreaker(name="breaker"), bottom, frames=[TextFrame("x")], end=True)
    assert task.error is not None and task.error.fatal and task.error.processor == task.name
    assert task.error.error == "pipeline error: OSError"
    # sent up from the bottom, through every processor (the input transport would tell the client)
    assert reported == [task.error] and bottom.errors() == [task.error]
    assert task.finish_reason == f"error in {task.name}"
    errors = _errors_logged(logs)
    assert [(e["event"], e["task"]) for e in errors] == [("task_failed", f"{task.name}-feed")]


class WrongWay(FrameProcessor):
    """Pushes its error downstream instead of up."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await self.push_frame(ErrorFrame(error=f"lost {frame.text}", processor=self.name), DOWNSTREAM)


async def test_an_error_pushed_downstream_still_ends_the_run() -> None:
    bottom = Recorder("bottom")
    task, reported = await _run(WrongWay(name="wrong"), bottom, frames=[TextFrame("it")], end=False)
    assert task.error is not None and task.error.error == "lost it" and reported == [task.error]
    assert task.finish_reason == "error in wrong"


# ---------------------------------------------------------------- secrets


class Secretive(FrameProcessor):
    def __init__(self, params: KeyParams, fail: str, text: str) -> None:
        super().__init__(name="llm")
        self.params = params
        self.fail = fail
        self.text = text

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame):
            if self.fail == "raise":
                raise RuntimeError(self.text)
            if self.fail == "push":
                await self.push_error(self.text, fatal=True)
            else:
                self.create_task(self._explode(), name="request")
        await self.push_frame(frame, direction)

    async def _explode(self) -> None:
        raise RuntimeError(self.text)


SECRET = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=4, max_size=24)


@settings(max_examples=40, deadline=None)
@given(key=SECRET, token=SECRET, fail=st.sampled_from(["raise", "push", "task"]), around=st.text(max_size=20))
@example(key="x***", token="sk-secret", fail="raise", around="xx")
@example(key="abcd", token="abcdabcd", fail="task", around="")
def test_errors_never_carry_secret_params(key: str, token: str, fail: str, around: str) -> None:
    params = KeyParams(api_key=SecretStr(key), tokens=[SecretStr(token)])
    text = f"{around}401 for key {key}{around} (token {token})"
    run = asyncio.run(run_processor(Secretive(params, fail, text), [TextFrame("go")]))
    assert run.error is not None
    assert key not in run.error.error and token not in run.error.error
    assert "***" in run.error.error


def test_secret_values_finds_nested_secrets() -> None:
    class Inner(ProcessorParams):
        password: SecretStr

    class Outer(ProcessorParams):
        inner: Inner
        by_name: dict[str, SecretStr]
        plain: str = "visible"

    params = Outer(inner=Inner(password=SecretStr("hunter22")), by_name={"a": SecretStr("tok-123")})
    assert secret_values(params) == ["hunter22", "tok-123"]
    assert secret_values(None) == []


# ---------------------------------------------------------------- event handlers


class Emitter(EventEmitter):
    def __init__(self) -> None:
        super().__init__()
        self._register_event_handler("on_thing")


async def test_a_raising_event_handler_is_logged_and_the_others_still_run() -> None:
    emitter = Emitter()
    ran: list[str] = []

    async def bad(_emitter: Emitter, value: int) -> None:
        raise KeyError(value)

    emitter.add_event_handler("on_thing", bad)
    emitter.add_event_handler("on_thing", lambda _emitter, value: ran.append(f"good {value}"))
    with structlog.testing.capture_logs() as logs:
        emitter._spawn_event_handler("on_thing", 1)
        await emitter._call_event_handler("on_thing", 2)
        await emitter._wait_event_handlers()
    assert sorted(ran) == ["good 1", "good 2"]
    failed = [e for e in logs if e["event"] == "event_handler_failed"]
    assert len(failed) == 2 and {e["event_name"] for e in failed} == {"on_thing"}
    assert all(isinstance(e["exc_info"], KeyError) for e in failed)


async def test_a_raising_pipeline_handler_does_not_end_the_session() -> None:
    bottom = Recorder("bottom")
    task = PipelineTask(Pipeline([bottom]))

    def broken(_task: PipelineTask) -> None:
        raise RuntimeError("handler bug")

    task.add_event_handler("on_pipeline_started", broken)
    await task.queue_frames([TextFrame("a"), TextFrame("b")])
    await task.end()
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(task.run(), 10)
    assert task.error is None and task.finish_reason == "ended"
    assert bottom.texts() == ["a", "b"]
    assert [e["event"] for e in _errors_logged(logs)] == ["event_handler_failed"]
