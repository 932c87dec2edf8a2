"""Built-in processor plugins, registered through the ``pipeline_run.processors`` entry points."""

from runner.processors.builtin.echo import AudioEcho
from runner.processors.builtin.passthrough import Passthrough
from runner.processors.builtin.tone import ToneSource
from runner.processors.builtin.wav import WavPlayer, WavRecorder

__all__ = ["AudioEcho", "Passthrough", "ToneSource", "WavPlayer", "WavRecorder"]
