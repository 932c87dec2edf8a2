"""``Pipeline``: processors linked in a chain; itself a processor, so pipelines nest."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from runner.frames import Frame, FrameDirection
from runner.processors.base import DOWNSTREAM, FrameProcessor


class _Edge(FrameProcessor):
    """Entry/exit of a pipeline: hands frames across the pipeline's boundary."""

    def __init__(self, owner: Pipeline, leaving: FrameDirection, name: str) -> None:
        super().__init__(name=name)
        self._owner = owner
        self._leaving = leaving

    async def queue_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        if direction is self._leaving:
            await self._owner.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    def processors(self) -> Iterator[FrameProcessor]:
        return iter(())


class Pipeline(FrameProcessor):
    """Links ``processors`` in order. Frames entering downstream go to the first one;
    frames entering upstream go to the last one."""

    def __init__(self, processors: Sequence[FrameProcessor], *, name: str | None = None) -> None:
        super().__init__(name=name)
        if not processors:
            raise ValueError("a pipeline needs at least one processor")
        self._source = _Edge(self, FrameDirection.UPSTREAM, f"{self.name}::source")
        self._sink = _Edge(self, FrameDirection.DOWNSTREAM, f"{self.name}::sink")
        self._children = list(processors)
        chain: list[FrameProcessor] = [self._source, *self._children, self._sink]
        for upstream, downstream in zip(chain, chain[1:], strict=False):
            upstream.link(downstream)

    @property
    def children(self) -> list[FrameProcessor]:
        return list(self._children)

    def processors(self) -> Iterator[FrameProcessor]:
        """Every processor inside, depth first (the pipeline itself excluded)."""
        for child in self._children:
            yield from child.processors()

    async def queue_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        if direction is DOWNSTREAM:
            await self._source.push_frame(frame, direction)
        else:
            await self._sink.push_frame(frame, direction)

    async def cleanup(self) -> None:
        for processor in self.processors():
            await processor.cleanup()
