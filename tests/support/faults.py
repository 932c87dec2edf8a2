"""A processor that fails on request, for tests of what a failing session looks like from outside.

``test.bomb`` reacts to the client's app message ``{"bomb": KIND}`` or to an RTVI
``client-message`` with ``t: "bomb"`` and ``d: KIND``:

* ``"task"`` -- a task of its own (``create_task``) raises ``RuntimeError(message)``: fatal;
* ``"dud"`` -- it pushes a non-fatal ``ErrorFrame`` the wrong way (downstream).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from runner.frames import ErrorFrame, Frame, FrameDirection, InputTransportMessageFrame
from runner.plugins import PluginRegistry
from runner.plugins.discovery import PROCESSORS, PluginInfo
from runner.processors.base import FrameProcessor, ProcessorParams


class BombParams(ProcessorParams):
    message: str = "detonated"


class Bomb(FrameProcessor):
    """Fails when the client asks it to (see the module docstring)."""

    Params: ClassVar[type[ProcessorParams]] = BombParams
    params: BombParams

    def __init__(self, params: BombParams | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params or BombParams()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        kind = _kind(frame.message) if isinstance(frame, InputTransportMessageFrame) else None
        if kind == "task":
            self.create_task(self._explode(), name="fuse")
        elif kind == "dud":
            await self.push_frame(ErrorFrame(error="dud went off", processor=self.name, fatal=False), direction)

    async def _explode(self) -> None:
        await asyncio.sleep(0)
        raise RuntimeError(self.params.message)


def _kind(message: Any) -> Any:
    if not isinstance(message, dict):
        return None
    if "bomb" in message:
        return message["bomb"]
    data = message.get("data")
    if message.get("type") == "client-message" and isinstance(data, dict) and data.get("t") == "bomb":
        return data.get("d")
    return None


def registry_with_bomb() -> PluginRegistry:
    """Every installed plugin plus ``test.bomb``."""
    found = PluginRegistry.discover()
    bomb = PluginInfo(PROCESSORS, "test.bomb", "tests", "0", f"{__name__}:Bomb", obj=Bomb)
    return PluginRegistry(plugins=[*found.plugins, bomb])


__all__ = ["Bomb", "BombParams", "registry_with_bomb"]
