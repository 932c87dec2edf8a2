"""Frames through a chain of passthrough processors: ours against Pipecat 1.14.

Pushes 20 ms audio frames (640 bytes, 16 kHz mono) through chains of 1, 10 and 50
passthrough processors plus a recording sink, via the task's ``queue_frame``:

* throughput (open loop): all frames queued at once, frames/s = N / (last arrival - first push);
* latency (closed loop): one frame at a time, push -> arrival at the sink (median, p95).

The same workload runs on Pipecat in a subprocess of the reference venv (``_pipecat_frames.py``,
default ``PipelineWorker``). Then, on ours only, a system frame is pushed behind data frames
queued in a slow processor, to show it overtakes them.

    python bench/frames_throughput.py [--quick] [--ours-only]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import structlog

from runner.frames import (
    DataFrame,
    Frame,
    FrameDirection,
    InputAudioRawFrame,
    InterruptionFrame,
    StartFrame,
    SystemFrame,
    UserStartedSpeakingFrame,
)
from runner.pipeline import Pipeline, PipelineTask
from runner.processors.base import FrameProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _refvenv import pipecat_python  # noqa: E402
from _stats import fmt, median, percentile, ratio  # noqa: E402

AUDIO = b"\x00" * 640  # 20 ms of 16 kHz mono s16
BENCH_DIR = Path(__file__).resolve().parent


class Passthrough(FrameProcessor):
    """Forwards every frame unchanged (the base class default, made explicit)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)


class Sink(FrameProcessor):
    """Last processor: stamps arrivals of audio frames (and any frame, in order)."""

    def __init__(self) -> None:
        super().__init__(name="sink")
        self.started = asyncio.Event()
        self.done = asyncio.Event()
        self.expected = 0
        self.arrivals: dict[int, float] = {}
        self.order: list[tuple[Frame, float]] = []
        self.record_order = False
        self.waiter: asyncio.Future[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if self.record_order:
            self.order.append((frame, time.perf_counter()))
        if isinstance(frame, InputAudioRawFrame):
            self.arrivals[id(frame)] = time.perf_counter()
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)
            if len(self.arrivals) >= self.expected:
                self.done.set()
            return
        if isinstance(frame, StartFrame):
            self.started.set()
        await self.push_frame(frame, direction)


class SlowQueued(FrameProcessor):
    """Owns a queue and task; spends ``delay`` seconds on each data frame."""

    queue_size: ClassVar[int] = 256
    delay = 0.005

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, DataFrame):
            await asyncio.sleep(self.delay)
        await self.push_frame(frame, direction)


@dataclass
class ChainResult:
    """One chain length's figures."""

    chain: int
    fps: float
    lat_ms: list[float] = field(default_factory=list)


def _frames(n: int) -> list[InputAudioRawFrame]:
    return [InputAudioRawFrame(audio=AUDIO, sample_rate=16000, num_channels=1) for _ in range(n)]


async def _start(processors: list[FrameProcessor], sink: Sink) -> tuple[PipelineTask, asyncio.Task[None]]:
    task = PipelineTask(Pipeline([*processors, sink]))
    runner = asyncio.create_task(task.run())
    await asyncio.wait_for(sink.started.wait(), 10)
    return task, runner


async def _stop(task: PipelineTask, runner: asyncio.Task[None]) -> None:
    await task.cancel("bench done")
    await asyncio.wait_for(runner, 10)


async def ours_chain(chain: int, frames: int, latency_frames: int) -> ChainResult:
    """Throughput then closed-loop latency on our core."""
    sink = Sink()
    task, runner = await _start([Passthrough(name=f"p{i}") for i in range(chain)], sink)

    sink.expected = frames
    t0 = time.perf_counter()
    for frame in _frames(frames):
        await task.queue_frame(frame)
    await sink.done.wait()
    fps = frames / (max(sink.arrivals.values()) - t0)

    sink.arrivals.clear()
    sink.expected = latency_frames
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    for frame in _frames(latency_frames):
        sink.waiter = loop.create_future()
        pushed = time.perf_counter()
        await task.queue_frame(frame)
        await sink.waiter
        lat.append((sink.arrivals[id(frame)] - pushed) * 1000.0)
    await _stop(task, runner)
    return ChainResult(chain, fps, lat)


def pipecat_chains(chains: list[int], frames: int, latency_frames: int) -> list[ChainResult]:
    """Run the same workload on Pipecat with the reference interpreter."""
    python = pipecat_python()
    cfg = json.dumps({"frames": frames, "chains": chains, "latency_frames": latency_frames})
    proc = subprocess.run(
        [python, str(BENCH_DIR / "_pipecat_frames.py"), cfg],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise SystemExit(f"pipecat run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return [ChainResult(r["chain"], r["fps"], r["lat_ms"]) for r in data["results"]]


async def overtake(queued: int, system: SystemFrame) -> dict[str, Any]:
    """Queue ``queued`` data frames in a slow processor, then push ``system``: where does it land?"""
    sink = Sink()
    sink.record_order = True
    task, runner = await _start([SlowQueued(name="slow")], sink)
    sink.order.clear()
    data = _frames(queued)
    sink.expected = queued
    for frame in data:
        await task.queue_frame(frame)
    await asyncio.sleep(0.001)  # let the feeder hand them to the slow processor's queue
    pushed = time.perf_counter()
    await task.queue_frame(system)
    with contextlib.suppress(TimeoutError):  # an interruption drops the data: nothing more arrives
        await asyncio.wait_for(sink.done.wait(), queued * SlowQueued.delay * 3 + 0.5)
    await _stop(task, runner)
    arrived = [f for f, _ in sink.order if isinstance(f, InputAudioRawFrame | type(system))]
    position = next((i for i, f in enumerate(arrived) if f is system), -1)
    sys_time = next((t for f, t in sink.order if f is system), float("nan"))
    last_data = max((t for f, t in sink.order if isinstance(f, InputAudioRawFrame)), default=float("nan"))
    return {
        "frame": system.name,
        "queued": queued,
        "position": position,
        "data_before": position if position >= 0 else -1,
        "data_after": len(arrived) - position - 1 if position >= 0 else -1,
        "data_arrived": len(sink.arrivals),
        "sys_latency_ms": (sys_time - pushed) * 1000.0,
        "last_data_ms": (last_data - pushed) * 1000.0,
    }


def print_table(ours: list[ChainResult], ref: dict[int, ChainResult], frames: int) -> None:
    """The comparison table."""
    print(f"\nframes_throughput: {frames} x 20 ms audio frames (640 B), passthrough chains")
    head = (
        f"{'chain':>5} | {'ours fps':>10} | {'pipecat fps':>11} | {'ratio':>6} | "
        f"{'ours lat med/p95 ms':>19} | {'pipecat lat med/p95 ms':>22} | {'lat ratio':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in ours:
        p = ref.get(r.chain)
        p_fps = p.fps if p else float("nan")
        p_med = median(p.lat_ms) if p else float("nan")
        p_p95 = percentile(p.lat_ms, 95) if p else float("nan")
        o_med = median(r.lat_ms)
        print(
            f"{r.chain:>5} | {fmt(r.fps, 0):>10} | {fmt(p_fps, 0):>11} | {fmt(ratio(r.fps, p_fps), 2):>6} | "
            f"{fmt(o_med, 3):>9}/{fmt(percentile(r.lat_ms, 95), 3):<9} | "
            f"{fmt(p_med, 3):>11}/{fmt(p_p95, 3):<10} | {fmt(ratio(o_med, p_med), 3):>9}"
        )
    print("(ratio = ours/pipecat: fps higher is better, latency lower is better)")


def print_overtake(results: list[dict[str, Any]]) -> None:
    """The system-frame-overtakes-queued-data table."""
    per_frame = f"{SlowQueued.delay * 1000:.0f} ms/data frame"
    print(f"\nsystem frame overtakes queued data (ours; one queued processor, {per_frame})")
    head = (
        f"{'system frame':>25} | {'queued':>6} | {'data before it':>14} | {'data after it':>13} | "
        f"{'sys latency ms':>14} | {'last data ms':>12}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r['frame']:>25} | {r['queued']:>6} | {r['data_before']:>14} | {r['data_after']:>13} | "
            f"{fmt(r['sys_latency_ms'], 3):>14} | {fmt(r['last_data_ms'], 1):>12}"
        )
    print("(InterruptionFrame also drops the queued data frames: 'data after it' counts survivors)")


async def run_ours(
    chains: list[int], frames: int, latency_frames: int, queued: int
) -> tuple[list[ChainResult], list[dict[str, Any]]]:
    """All of our measurements."""
    results = [await ours_chain(n, frames, latency_frames) for n in chains]
    over = [
        await overtake(queued, UserStartedSpeakingFrame()),
        await overtake(queued, InterruptionFrame()),
    ]
    return results, over


def main(argv: list[str] | None = None) -> None:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames (fast smoke run)")
    parser.add_argument("--ours-only", action="store_true", help="skip the Pipecat reference")
    parser.add_argument("--frames", type=int, default=None, help="frames per chain (default 20000, quick 2000)")
    parser.add_argument("--chains", default="1,10,50", help="comma-separated chain lengths")
    args = parser.parse_args(argv)

    frames = args.frames or (2000 if args.quick else 20000)
    latency_frames = 200 if args.quick else 2000
    queued = 10 if args.quick else 50
    chains = [int(c) for c in args.chains.split(",")]

    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))

    ours, over = asyncio.run(run_ours(chains, frames, latency_frames, queued))
    ref: dict[int, ChainResult] = {}
    if not args.ours_only:
        ref = {r.chain: r for r in pipecat_chains(chains, frames, latency_frames)}
    print_table(ours, ref, frames)
    print_overtake(over)


if __name__ == "__main__":
    main()
