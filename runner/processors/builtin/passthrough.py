"""``Passthrough`` (``passthrough``): passes every frame on unchanged."""

from __future__ import annotations

from runner.processors.base import FrameProcessor, ProcessorParams


class Passthrough(FrameProcessor):
    """Does nothing but pass frames on; a placeholder and a wiring test."""

    class Params(ProcessorParams):
        """Passthrough takes no parameters."""

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params if params is not None else self.Params()
