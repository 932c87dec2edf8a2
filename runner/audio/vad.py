"""Voice activity detection: the analyzer contract (entry-point group ``pipeline_run.vad``).

A :class:`VADAnalyzer` is fed 16-bit mono PCM in chunks of any size through
:meth:`VADAnalyzer.analyze_audio`. It cuts the stream into analysis windows of
:meth:`VADAnalyzer.num_frames_required` samples, asks the subclass for a
:meth:`VADAnalyzer.voice_confidence` per window, and runs a small state machine:
speech must last ``start_secs`` before the state becomes SPEAKING, and silence must
last ``stop_secs`` before it goes back to QUIET. Subclasses (energy, Silero, ...)
only decide how confident they are that one window holds a voice.
"""

from __future__ import annotations

import abc
from enum import Enum
from typing import ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from runner.audio.pcm import level, pcm16_to_float


class VADParams(BaseModel):
    """Detection thresholds and timing shared by every analyzer."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    confidence: float = Field(
        default=0.7,
        ge=0.0,
        le=1.0,
        validation_alias=AliasChoices("confidence", "threshold"),
        description="Voice confidence (0..1) a window needs to count as speech (alias: threshold).",
    )
    start_secs: float = Field(
        default=0.2, ge=0.0, le=5.0, description="Seconds of speech before the user counts as speaking."
    )
    stop_secs: float = Field(
        default=0.8, ge=0.0, le=10.0, description="Seconds of silence before the user counts as stopped."
    )
    min_volume: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="Smoothed loudness (0..1; 0 = -80 dBFS, 1 = 0 dBFS) a window needs to count as speech.",
    )


class VADState(Enum):
    """Where the detector is: quiet, speech starting, speaking, speech stopping."""

    QUIET = 1
    STARTING = 2
    SPEAKING = 3
    STOPPING = 4


class VADAnalyzer(abc.ABC):
    """Base of every VAD plugin: windowing, volume gate and the start/stop state machine."""

    Params: ClassVar[type[VADParams]] = VADParams
    #: weight of a new window's volume in the smoothed volume (1 = no smoothing).
    volume_smoothing: ClassVar[float] = 0.5

    def __init__(self, params: VADParams | None = None, *, sample_rate: int = 16000) -> None:
        self.params = params if params is not None else self.Params()
        self.sample_rate = sample_rate
        self._buffer = bytearray()
        self._state = VADState.QUIET
        self._starting_windows = 0
        self._stopping_windows = 0
        self._volume = 0.0
        self._configure()

    # ------------------------------------------------------------ public API

    @property
    def state(self) -> VADState:
        """The state after the last complete window."""
        return self._state

    @property
    def volume(self) -> float:
        """The smoothed 0..1 loudness of the recent windows."""
        return self._volume

    def set_sample_rate(self, rate: int) -> None:
        """Change the input rate; drops buffered audio and resets the state machine."""
        if rate <= 0:
            raise ValueError(f"sample rate must be positive, got {rate}")
        self.sample_rate = rate
        self._configure()

    def set_params(self, params: VADParams) -> None:
        """Replace the thresholds and timing (takes effect at the next window)."""
        self.params = params
        self._configure()

    def num_frames_required(self) -> int:
        """Samples per analysis window (default 20 ms); subclasses may need a fixed size."""
        return max(1, self.sample_rate // 50)

    @abc.abstractmethod
    def voice_confidence(self, pcm: bytes) -> float:
        """Confidence 0..1 that one window (16-bit mono PCM) holds a voice."""

    def analyze_audio(self, pcm: bytes) -> VADState:
        """Feed a chunk of 16-bit mono PCM of any size; return the state after it."""
        self._buffer.extend(pcm)
        window_bytes = self._window_bytes
        while len(self._buffer) >= window_bytes:
            window = bytes(self._buffer[:window_bytes])
            del self._buffer[:window_bytes]
            self._step(self._is_speech(window))
        return self._state

    def reset(self) -> None:
        """Forget buffered audio and go back to QUIET."""
        self._buffer.clear()
        self._state = VADState.QUIET
        self._starting_windows = 0
        self._stopping_windows = 0
        self._volume = 0.0

    # ------------------------------------------------------------ internals

    def _configure(self) -> None:
        self.reset()
        self._window_bytes = 2 * self.num_frames_required()
        window_secs = self.num_frames_required() / self.sample_rate
        self._start_windows = max(1, round(self.params.start_secs / window_secs))
        self._stop_windows = max(1, round(self.params.stop_secs / window_secs))

    def _is_speech(self, window: bytes) -> bool:
        confidence = self.voice_confidence(window)
        new_volume = level(pcm16_to_float(window))
        self._volume += self.volume_smoothing * (new_volume - self._volume)
        return confidence >= self.params.confidence and self._volume >= self.params.min_volume

    def _step(self, speech: bool) -> None:
        state = self._state
        if speech:
            self._stopping_windows = 0
            if state in (VADState.QUIET, VADState.STARTING):
                self._starting_windows += 1
                started = self._starting_windows >= self._start_windows
                self._state = VADState.SPEAKING if started else VADState.STARTING
            else:
                self._state = VADState.SPEAKING
        else:
            self._starting_windows = 0
            if state in (VADState.SPEAKING, VADState.STOPPING):
                self._stopping_windows += 1
                stopped = self._stopping_windows >= self._stop_windows
                self._state = VADState.QUIET if stopped else VADState.STOPPING
            else:
                self._state = VADState.QUIET
        if self._state is VADState.SPEAKING:
            self._starting_windows = 0
        elif self._state is VADState.QUIET:
            self._stopping_windows = 0


__all__ = ["VADAnalyzer", "VADParams", "VADState"]
