"""``ProcessorMetrics``: a processor's time-to-first-byte and processing-time timers.

A processor starts a timer when work begins (a turn reaches the responder, a sentence the
TTS) and stops it when the first output appears (TTFB) or the work is done (processing).
Stopping a running timer gives a :class:`~runner.frames.MetricsFrame`; stopping one that was
never started, or starting one already running, does nothing, so the calls can sit on every
path without bookkeeping. The clock is injected (tests) and monotonic by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from runner.frames import MetricsFrame

MetricKind = Literal["ttfb", "processing"]


class ProcessorMetrics:
    """The two timers of one processor; ``processor`` names it in every measurement."""

    def __init__(self, processor: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.processor = processor
        self.clock = clock
        self._started: dict[MetricKind, float] = {}

    def running(self, kind: MetricKind) -> bool:
        """True while the ``kind`` timer is started and not yet stopped."""
        return kind in self._started

    def start(self, kind: MetricKind) -> None:
        """Start the ``kind`` timer (no-op while it runs: the first start counts)."""
        self._started.setdefault(kind, self.clock())

    def stop(self, kind: MetricKind) -> MetricsFrame | None:
        """Stop the ``kind`` timer; its measurement, or None when it was not running."""
        began = self._started.pop(kind, None)
        if began is None:
            return None
        return MetricsFrame(kind=kind, processor=self.processor, value=max(0.0, self.clock() - began))

    def reset(self) -> None:
        """Forget running timers (an interruption abandoned the work they measured)."""
        self._started.clear()


__all__ = ["MetricKind", "ProcessorMetrics"]
