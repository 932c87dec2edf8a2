"""``TaskOwner``: every background task referenced, every failure logged once and reported."""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import structlog
from hypothesis import example, given, settings
from hypothesis import strategies as st

from runner.tasks import TaskOwner

# What each spawned task does: return, raise, or wait until cancelled.
Outcome = str
OUTCOMES = st.lists(st.sampled_from(["ok", "raise", "hang"]), max_size=12)


def _capture() -> Any:
    """Captured structlog entries, with the context bound by the session (as in production)."""
    return structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars])


async def _job(outcome: Outcome, index: int) -> str:
    await asyncio.sleep(0)
    if outcome == "raise":
        raise RuntimeError(f"job {index} broke")
    if outcome == "hang":
        await asyncio.Event().wait()
    return f"result {index}"


async def _scenario(outcomes: list[Outcome]) -> None:
    reported: list[tuple[str, str]] = []

    def on_failure(name: str, exc: Exception) -> None:
        reported.append((name, str(exc)))

    owner = TaskOwner("worker", on_failure=on_failure)
    with _capture() as logs, structlog.contextvars.bound_contextvars(session_id="s-1", pc_id="pc-1"):
        tasks = [owner.spawn(_job(outcome, i), name=f"job-{i}") for i, outcome in enumerate(outcomes)]
        finished = await owner.wait(timeout=0.05 if "hang" in outcomes else None)
    assert finished == ("hang" not in outcomes)
    assert len(owner) == 0  # nothing left behind: hung tasks were cancelled
    failing = [i for i, outcome in enumerate(outcomes) if outcome == "raise"]
    assert reported == [(f"job-{i}", f"job {i} broke") for i in failing]
    assert owner.failures == len(failing)
    failed_logs = [entry for entry in logs if entry["event"] == "task_failed"]
    assert [entry["task"] for entry in failed_logs] == [f"job-{i}" for i in failing]
    for entry in failed_logs:  # one line each: owner, session, exception with its traceback
        assert entry["owner"] == "worker" and entry["session_id"] == "s-1" and entry["pc_id"] == "pc-1"
        assert entry["log_level"] == "error"
        assert isinstance(entry["exc_info"], RuntimeError)
        assert entry["error"].startswith("RuntimeError: job ")
    for index, (task, outcome) in enumerate(zip(tasks, outcomes, strict=True)):
        if outcome == "hang":
            assert task.cancelled()
        else:
            assert task.result() == (None if outcome == "raise" else f"result {index}")


@settings(max_examples=40, deadline=None)
@given(OUTCOMES)
@example([])
@example(["raise", "raise"])
@example(["ok", "hang", "raise"])
def test_owner_logs_and_reports_each_failure_once(outcomes: list[Outcome]) -> None:
    asyncio.run(_scenario(outcomes))


async def test_async_failure_handler_runs_in_the_failed_task_and_its_own_failure_is_logged() -> None:
    calls: list[str] = []

    async def on_failure(name: str, exc: Exception) -> None:
        calls.append(name)
        raise ValueError("report broke too")

    owner = TaskOwner("stt", on_failure=on_failure)
    with _capture() as logs:
        task = owner.spawn(_job("raise", 0), name="decode")
        assert await task is None
    assert calls == ["decode"]
    events = [(entry["event"], entry["task"]) for entry in logs]
    assert events == [("task_failed", "decode"), ("task_failure_report_failed", "decode")]


async def test_cancel_all_stops_everything_even_tasks_never_started() -> None:
    owner = TaskOwner("source")
    started: list[int] = []

    async def runs_forever(index: int) -> None:
        started.append(index)
        await asyncio.Event().wait()

    first = owner.spawn(runs_forever(0), name="first")
    await asyncio.sleep(0)
    second = owner.spawn(runs_forever(1), name="second")  # cancelled before its first step
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await owner.cancel_all()
        gc.collect()
    assert first.cancelled() and second.cancelled()
    assert started == [0] and len(owner) == 0
    assert not [w for w in caught if "never awaited" in str(w.message)]


async def test_cancellation_is_not_a_failure() -> None:
    reported: list[str] = []
    owner = TaskOwner("timer", on_failure=lambda name, exc: reported.append(name))
    with _capture() as logs:
        task = owner.spawn(_job("hang", 0), name="grace")
        await asyncio.sleep(0.01)
        await owner.cancel_all()
    assert task.cancelled() and reported == [] and owner.failures == 0
    assert not [entry for entry in logs if entry["log_level"] == "error"]
