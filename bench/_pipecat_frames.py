"""The frames-throughput workload on Pipecat (run by the reference venv's python).

Usage: ``python _pipecat_frames.py '{"frames": 20000, "chains": [1, 10, 50], "latency_frames": 2000}'``.
Prints one JSON object: ``{"results": [{"chain": n, "fps": .., "lat_ms": [..]}, ...]}``.
Uses Pipecat's default ``PipelineWorker`` + ``WorkerRunner`` and plain ``FrameProcessor``
subclasses, i.e. each processor's normal input queue and task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame, InputAudioRawFrame, StartFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

AUDIO = b"\x00" * 640  # 20 ms, 16 kHz mono, s16


class Passthrough(FrameProcessor):
    """Forwards every frame unchanged."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class Sink(FrameProcessor):
    """Last processor: stamps the arrival of each audio frame."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.arrivals: dict[int, float] = {}
        self.expected = 0
        self.done = asyncio.Event()
        self.waiter: asyncio.Future[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
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


def _frames(n: int) -> list[InputAudioRawFrame]:
    return [InputAudioRawFrame(audio=AUDIO, sample_rate=16000, num_channels=1) for _ in range(n)]


async def run_chain(chain: int, frames: int, latency_frames: int) -> dict[str, Any]:
    """Throughput (open loop) then per-frame latency (closed loop) on one chain."""
    sink = Sink()
    pipeline = Pipeline([*(Passthrough() for _ in range(chain)), sink])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=16000),
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run_task = asyncio.create_task(runner.run())
    await asyncio.wait_for(sink.started.wait(), 30)

    batch = _frames(frames)
    sink.expected = frames
    t0 = time.perf_counter()
    for frame in batch:
        await worker.queue_frame(frame)
    await sink.done.wait()
    elapsed = max(sink.arrivals.values()) - t0
    fps = frames / elapsed

    sink.arrivals.clear()
    sink.done.clear()
    sink.expected = latency_frames
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    for frame in _frames(latency_frames):
        sink.waiter = loop.create_future()
        pushed = time.perf_counter()
        await worker.queue_frame(frame)
        await sink.waiter
        lat.append((sink.arrivals[id(frame)] - pushed) * 1000.0)

    await runner.cancel()
    try:
        await asyncio.wait_for(run_task, 10)
    except (TimeoutError, asyncio.CancelledError):
        run_task.cancel()
    return {"chain": chain, "fps": fps, "lat_ms": lat}


async def main() -> None:
    cfg = json.loads(sys.argv[1])
    results = [await run_chain(n, cfg["frames"], cfg["latency_frames"]) for n in cfg["chains"]]
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    logging.disable(logging.WARNING)
    asyncio.run(main())
