"""``PipelineRunner``: run one task in the foreground, cancelling it on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from runner.pipeline.task import PipelineTask
from runner.tasks import TaskOwner


class PipelineRunner:
    """Runs a :class:`PipelineTask`; with ``handle_signals`` Ctrl-C cancels it cleanly."""

    def __init__(self, *, handle_signals: bool = True) -> None:
        self.handle_signals = handle_signals

    async def run(self, task: PipelineTask) -> None:
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        cancels = TaskOwner("PipelineRunner")
        if self.handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, lambda: cancels.spawn(task.cancel("signal"), name="cancel-on-signal"))
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):  # not the main thread
                    pass
        try:
            await task.run()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await cancels.wait()
