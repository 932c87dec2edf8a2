"""The frame vocabulary: everything that moves through a pipeline is a frame.

Three families, told apart by base class:

* ``SystemFrame`` -- out of band. Processors that queue work let these overtake
  queued data (start, cancel, interruption, speaking notices, errors).
* ``DataFrame`` -- media and text, processed in order.
* ``ControlFrame`` -- in order like data (end, flush, response and TTS markers).

What an interruption does to a queued frame is decided here and nowhere else, by the class
attribute :attr:`Frame.on_interruption`. The user barging in cancels what the bot was about
to say or show, never what the user said or showed:

* ``"drop"`` -- bot-bound data (``TextFrame``, ``TTSSpeakFrame``, ``ContextFrame``,
  ``OutputAudioRawFrame``, ``OutputImageRawFrame``, ``OutputTransportMessageFrame``; the
  default of ``DataFrame``): removed from every queue, and work in progress on it abandoned.
* ``"keep"`` -- the user's words (``TranscriptionFrame`` and its ``UserTurnFrame``): stay
  queued, in order; a processor already working on one (an LLM answering it) has its
  reaction abandoned, as that reaction is the bot's output. The words were received.
* ``"finish"`` -- the user's media (``InputAudioRawFrame``, ``InputImageRawFrame``) and every
  control frame: stay queued, and work in progress on one completes (abandoning an STT in the
  middle of a chunk would lose the start of what interrupted the bot).

Input transport messages are system frames: never queued. A new data frame type that carries
user input sets ``on_interruption = "keep"`` or ``"finish"``.

This module imports nothing of ours, so anything may depend on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Literal

#: See the module docstring: what an interruption does to a frame waiting in (or taken from) a queue.
InterruptionRule = Literal["drop", "keep", "finish"]


class FrameDirection(Enum):
    """Which way a frame travels: towards the output (downstream) or back to the input."""

    DOWNSTREAM = 1
    UPSTREAM = 2


@dataclass(slots=True)
class Frame:
    """Base of every frame."""

    #: What an interruption does to this frame in a processor's queue (module docstring);
    #: only bot-bound data frames are dropped.
    on_interruption: ClassVar[InterruptionRule] = "finish"

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(slots=True)
class SystemFrame(Frame):
    """Out-of-band frame: overtakes queued data frames."""


@dataclass(slots=True)
class DataFrame(Frame):
    """In-band frame; an interruption drops it from any queue unless it carries user input."""

    on_interruption: ClassVar[InterruptionRule] = "drop"


@dataclass(slots=True)
class ControlFrame(Frame):
    """In-band frame that an interruption does not drop."""

    on_interruption: ClassVar[InterruptionRule] = "finish"


# ---------------------------------------------------------------- system frames


@dataclass(slots=True)
class StartFrame(SystemFrame):
    """First frame of a pipeline run; carries the audio formats the pipeline agreed on."""

    audio_in_sample_rate: int = 16000
    audio_out_sample_rate: int = 24000
    allow_interruptions: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The server session this run serves (None outside a server, e.g. in tests).
    session_id: str | None = None
    #: processors report TTFB and processing time (``MetricsFrame``).
    enable_metrics: bool = False


@dataclass(slots=True)
class CancelFrame(SystemFrame):
    """Stop now: processors abandon queued work and shut down."""

    reason: str | None = None


@dataclass(slots=True)
class InterruptionFrame(SystemFrame):
    """The user barged in: drop queued data, stop talking."""


@dataclass(slots=True)
class UserStartedSpeakingFrame(SystemFrame):
    """Voice activity started."""


@dataclass(slots=True)
class UserStoppedSpeakingFrame(SystemFrame):
    """Voice activity stopped."""


@dataclass(slots=True)
class BotStartedSpeakingFrame(SystemFrame):
    """The output transport began playing bot audio."""


@dataclass(slots=True)
class BotStoppedSpeakingFrame(SystemFrame):
    """The output transport ran out of bot audio."""


@dataclass(slots=True)
class ErrorFrame(SystemFrame):
    """A processor failed. ``fatal`` errors end the pipeline.

    ``error`` is also what the client is told (RTVI ``error``): a sentence for a person, never
    an exception's repr or a secret. ``exception``, when there is one, stays on the server.
    """

    error: str
    processor: str | None = None
    fatal: bool = True
    exception: BaseException | None = field(default=None, repr=False)


@dataclass(slots=True)
class MetricsFrame(SystemFrame):
    """One measurement of a processor (``kind``: ``ttfb`` or ``processing``), in seconds.

    Sent to the client as the RTVI ``metrics`` message; only pushed when the pipeline has
    ``enable_metrics`` on (see :class:`~runner.processors.metrics.ProcessorMetrics`).
    """

    kind: Literal["ttfb", "processing"]
    processor: str
    value: float


@dataclass(slots=True)
class InputTransportMessageFrame(SystemFrame):
    """An app message that arrived from the client (data channel)."""

    message: Any


# ---------------------------------------------------------------- data frames


@dataclass(slots=True)
class AudioRawFrame(DataFrame):
    """16-bit signed little-endian PCM, interleaved when ``num_channels`` > 1."""

    audio: bytes
    sample_rate: int
    num_channels: int = 1

    @property
    def num_frames(self) -> int:
        """Samples per channel."""
        return len(self.audio) // (2 * self.num_channels)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.sample_rate if self.sample_rate else 0.0


@dataclass(slots=True)
class InputAudioRawFrame(AudioRawFrame):
    """Audio from the user (microphone); an interruption never drops it or cuts its processing.

    ``received_at`` is the ``time.monotonic()`` at which the transport had the chunk complete
    (None for audio that did not come from a transport): a real-time relay can tell how late it is.
    """

    received_at: float | None = None
    on_interruption: ClassVar[InterruptionRule] = "finish"


@dataclass(slots=True)
class OutputAudioRawFrame(AudioRawFrame):
    """Audio for the user's speaker."""


@dataclass(slots=True)
class ImageRawFrame(DataFrame):
    """A raw picture: ``size`` is (width, height), ``format`` e.g. ``RGB``, ``gray``, ``yuv420p``."""

    image: bytes
    size: tuple[int, int]
    format: str = "RGB"


@dataclass(slots=True)
class InputImageRawFrame(ImageRawFrame):
    """A frame from the user's camera or screen; ``source`` tells which. Never dropped by an interruption."""

    on_interruption: ClassVar[InterruptionRule] = "finish"

    source: str = "camera"
    user_id: str | None = None


@dataclass(slots=True)
class OutputImageRawFrame(ImageRawFrame):
    """A frame for the bot's video track."""


@dataclass(slots=True)
class TextFrame(DataFrame):
    """Text produced by a processor (for example a responder's reply)."""

    text: str


@dataclass(slots=True)
class TTSSpeakFrame(DataFrame):
    """Text the bot should say out loud as is (``say`` action, greetings)."""

    text: str


@dataclass(slots=True)
class TranscriptionFrame(DataFrame):
    """Text recognised from the user's speech; an interruption never drops it."""

    on_interruption: ClassVar[InterruptionRule] = "keep"

    text: str
    user_id: str = ""
    timestamp: float = field(default_factory=time.time)
    final: bool = True


@dataclass(slots=True)
class OutputTransportMessageFrame(DataFrame):
    """An app message for the client (sent over the data channel)."""

    message: Any


# ---------------------------------------------------------------- control frames


@dataclass(slots=True)
class EndFrame(ControlFrame):
    """Finish gracefully: everything queued before it is processed first."""

    reason: str | None = None


@dataclass(slots=True)
class FlushFrame(ControlFrame):
    """Ask buffering processors to emit what they hold."""


@dataclass(slots=True)
class UtteranceTranscribedFrame(ControlFrame):
    """An STT has pushed every final transcript of the VAD utterance that just ended.

    Sent once per ``UserStoppedSpeakingFrame`` the STT acted on, right after that
    utterance's final ``TranscriptionFrame`` s (there may be none: a cough). A turn
    aggregator that sees it can close the turn at once instead of waiting for late text.
    """


# ---------------------------------------------------------------- conversation frames


@dataclass(slots=True)
class UserTurnFrame(TranscriptionFrame):
    """The whole text of one completed user turn (a final transcription, so plain responders answer it)."""


@dataclass(slots=True)
class ContextFrame(DataFrame):
    """The conversation so far, ``[{"role", "content"}, ...]`` with the system prompt first."""

    messages: list[dict[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class LLMResponseStartFrame(ControlFrame):
    """A responder begins one response (its text frames follow)."""


@dataclass(slots=True)
class LLMResponseEndFrame(ControlFrame):
    """A responder has pushed all text of one response."""


@dataclass(slots=True)
class TTSStartedFrame(ControlFrame):
    """Speech synthesis for a piece of text begins (audio follows)."""


@dataclass(slots=True)
class TTSStoppedFrame(ControlFrame):
    """All audio for the piece of text has been pushed."""


__all__ = [
    "AudioRawFrame",
    "BotStartedSpeakingFrame",
    "BotStoppedSpeakingFrame",
    "CancelFrame",
    "ContextFrame",
    "ControlFrame",
    "DataFrame",
    "EndFrame",
    "ErrorFrame",
    "FlushFrame",
    "Frame",
    "FrameDirection",
    "ImageRawFrame",
    "InputAudioRawFrame",
    "InputImageRawFrame",
    "InputTransportMessageFrame",
    "InterruptionFrame",
    "InterruptionRule",
    "LLMResponseEndFrame",
    "LLMResponseStartFrame",
    "OutputAudioRawFrame",
    "OutputImageRawFrame",
    "OutputTransportMessageFrame",
    "StartFrame",
    "SystemFrame",
    "TTSSpeakFrame",
    "TTSStartedFrame",
    "TTSStoppedFrame",
    "TextFrame",
    "TranscriptionFrame",
    "UserStartedSpeakingFrame",
    "UserStoppedSpeakingFrame",
    "UserTurnFrame",
    "UtteranceTranscribedFrame",
]
