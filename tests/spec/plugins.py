"""Small plugin classes and a hand-built registry for the spec tests."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from runner.actions.base import Action, ActionParams
from runner.actions.reply import ReplyAction
from runner.audio.vad import VADAnalyzer, VADParams
from runner.plugins.discovery import ACTIONS, PROCESSORS, VAD, PluginInfo, PluginRegistry
from runner.processors.base import FrameProcessor, ProcessorParams


class ToneParams(ProcessorParams):
    frequency: float = Field(default=440.0, gt=0, le=20000)
    """Tone frequency in Hz."""
    volume: float = Field(default=0.5, ge=0, le=1)
    waveform: Literal["sine", "square"] = "sine"
    repeat: int | None = None
    api_key: SecretStr | None = None
    """A secret, to check masking."""


class Tone(FrameProcessor):
    """Plays a tone."""

    Params: ClassVar[type[ProcessorParams]] = ToneParams
    events: ClassVar[tuple[str, ...]] = ("on_tone_started",)


class Echo(FrameProcessor):
    """Sends input audio back."""


class RecorderParams(ProcessorParams):
    path: str
    """Where to write the WAV file."""
    token: str | None = None


class Recorder(FrameProcessor):
    """Records audio."""

    Params: ClassVar[type[ProcessorParams]] = RecorderParams
    events: ClassVar[tuple[str, ...]] = ("on_recording_saved",)


class EnergyParams(VADParams):
    threshold: float = Field(default=0.5, ge=0, le=1)


class Energy(VADAnalyzer):
    """Loudness VAD."""

    Params: ClassVar[type[VADParams]] = EnergyParams


class LogParams(ActionParams):
    message: str = ""
    level: Literal["info", "warning"] = "info"


class Log(Action):
    """Logs the event."""

    Params: ClassVar[type[ActionParams]] = LogParams


class SayParams(ActionParams):
    text: str


class Say(Action):
    """Speaks."""

    Params: ClassVar[type[ActionParams]] = SayParams


class End(Action):
    """Ends the session."""


def make_registry() -> PluginRegistry:
    """A registry with the test plugins only."""
    plugins = [
        (PROCESSORS, "audio.tone", Tone),
        (PROCESSORS, "audio.echo", Echo),
        (PROCESSORS, "audio.recorder", Recorder),
        (VAD, "energy", Energy),
        (ACTIONS, "log", Log),
        (ACTIONS, "say", Say),
        (ACTIONS, "end", End),
        (ACTIONS, "reply", ReplyAction),
    ]
    return PluginRegistry(
        plugins=[
            PluginInfo(group, name, "spec-tests", "0", f"{cls.__module__}:{cls.__qualname__}", obj=cls)
            for group, name, cls in plugins
        ]
    )
