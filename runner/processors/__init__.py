"""Frame processors: the base class, the queue mechanism and the built-in plugins."""

from runner.processors.base import DOWNSTREAM, UPSTREAM, FrameProcessor, ProcessorParams

__all__ = ["DOWNSTREAM", "UPSTREAM", "FrameProcessor", "ProcessorParams"]
