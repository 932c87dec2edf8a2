"""``RTVIEvents`` (``rtvi.events``): pipeline frames become RTVI server->client messages.

Each message is an ``OutputTransportMessageFrame`` carrying
``{"label": "rtvi-ai", "type": ..., "data": {...}}`` (``data`` left out for the events
that carry none, as the reference server does), pushed downstream to the output transport,
which sends it on the data channel.

======================  ===========================================  ======================
frame                   message                                      ``data``
======================  ===========================================  ======================
UserStartedSpeaking     ``user-started-speaking``                    --
UserStoppedSpeaking     ``user-stopped-speaking``                    --
BotStartedSpeaking      ``bot-started-speaking``                     --
BotStoppedSpeaking      ``bot-stopped-speaking``                     --
Interruption            ``bot-interrupted`` (only while the bot      --
                        speaks or a response is under way)
TranscriptionFrame      ``user-transcription`` (final and interim)   text, user_id,
                                                                     timestamp, final
UserTurnFrame           ``user-llm-text``                            text
LLMResponseStart / End  ``bot-llm-started`` / ``bot-llm-stopped``    --
TextFrame (responder)   ``bot-llm-text``                             text
TTSStarted / Stopped    ``bot-tts-started`` / ``bot-tts-stopped``    --
TextFrame (TTS)         ``bot-tts-text`` and ``bot-output``          text (+ spoken,
                                                                     aggregated_by)
MetricsFrame            ``metrics``                                  ttfb or processing:
                                                                     [{processor, value}]
======================  ===========================================  ======================

Placement: a processor sees only the frames that pass it, so the instance itself sits
right before the output transport (it sees the TTS's text and markers downstream and the
bot-speaking frames coming up from the output) and lends *taps* (:meth:`RTVIEvents.tap`)
to other places: a tap after the STT sees transcripts that the user-turn aggregator and the
responder consume; a tap after the responder sees its text before the TTS consumes it.
Taps only observe; every message leaves from the instance, so none waits behind a TTS
queue. A frame seen at several places is reported once. :func:`install_rtvi_events` puts a
tap between every two processors and the instance at the end.

A ``TextFrame`` is the TTS's (spoken) text when it arrives between ``TTSStartedFrame`` and
``TTSStoppedFrame`` at that place, the responder's otherwise (``text_frames`` overrides).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from runner.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    FrameDirection,
    InterruptionFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    MetricsFrame,
    OutputTransportMessageFrame,
    TextFrame,
    TranscriptionFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    UserTurnFrame,
)
from runner.processors.base import DOWNSTREAM, FrameProcessor, ProcessorParams
from runner.rtvi_protocol import rtvi_envelope

TextKind = Literal["auto", "llm", "tts"]

_REPORTED = (
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InterruptionFrame,
    TranscriptionFrame,
    TextFrame,
    LLMResponseStartFrame,
    LLMResponseEndFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    MetricsFrame,
)
#: how many reported frames are remembered to report each once.
_SEEN_MAX = 256


def rtvi_event(msg_type: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """One server->client RTVI message; ``data`` is left out when None."""
    return rtvi_envelope(msg_type) if data is None else rtvi_envelope(msg_type, data)


def iso_timestamp(epoch: float) -> str:
    """``epoch`` seconds as the ISO 8601 UTC string RTVI transcripts carry."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


class _Point:
    """What one observing place knows: whether it is inside a TTS piece."""

    __slots__ = ("in_tts", "text_frames")

    def __init__(self, text_frames: TextKind) -> None:
        self.in_tts = False
        self.text_frames: TextKind = text_frames

    def text_kind(self) -> Literal["llm", "tts"]:
        if self.text_frames == "auto":
            return "tts" if self.in_tts else "llm"
        return self.text_frames


class RTVIEvents(FrameProcessor):
    """Turns frames into RTVI messages for the client (place right before the output)."""

    class Params(ProcessorParams):
        """Which RTVI event classes are sent."""

        user_speaking: bool = Field(default=True, description="user-started-speaking / user-stopped-speaking.")
        bot_speaking: bool = Field(default=True, description="bot-started-speaking / bot-stopped-speaking.")
        bot_interrupted: bool = Field(default=True, description="bot-interrupted when the user barges in.")
        user_transcription: bool = Field(default=True, description="user-transcription for final transcripts.")
        interim_transcription: bool = Field(default=True, description="user-transcription for interim transcripts.")
        user_llm_text: bool = Field(default=True, description="user-llm-text with each completed user turn.")
        bot_llm: bool = Field(default=True, description="bot-llm-started / bot-llm-text / bot-llm-stopped.")
        bot_tts: bool = Field(default=True, description="bot-tts-started / bot-tts-text / bot-tts-stopped.")
        bot_output: bool = Field(default=True, description="bot-output with each spoken piece of text.")
        text_frames: TextKind = Field(
            default="auto", description="What plain TextFrames here are: auto (by TTS markers), llm or tts."
        )

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params if params is not None else self.Params()
        self._point = _Point(self.params.text_frames)
        self._seen: OrderedDict[int, Frame] = OrderedDict()
        self._taps = 0
        self._bot_speaking = False
        self._llm_open = False
        self._tts_open = False
        self.sent = 0

    def tap(self, *, name: str | None = None, text_frames: TextKind = "auto") -> RTVITap:
        """A pass-through processor that reports what passes it through this instance."""
        self._taps += 1
        return RTVITap(self, name=name or f"{self.name}::tap{self._taps}", text_frames=text_frames)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.observe(self._point, frame, direction, final_place=True)
        await self.push_frame(frame, direction)

    # ------------------------------------------------------------ observing

    async def observe(self, point: _Point, frame: Frame, direction: FrameDirection, *, final_place: bool) -> None:
        """Report ``frame`` seen at ``point`` (once, whichever place sees it first)."""
        if not isinstance(frame, _REPORTED):
            return
        if isinstance(frame, TTSStartedFrame):
            point.in_tts = True
        elif isinstance(frame, TTSStoppedFrame | InterruptionFrame):
            point.in_tts = False
        text_kind = point.text_kind()
        if isinstance(frame, InterruptionFrame) and not final_place:
            return  # a held interruption (min_words) must not be reported: only what reaches the output
        if self.start_frame is None or self._already_seen(frame):
            return
        for message in self._messages(frame, direction, text_kind):
            self.sent += 1
            await self.push_frame(OutputTransportMessageFrame(message=message), DOWNSTREAM)

    def _already_seen(self, frame: Frame) -> bool:
        key = id(frame)
        if key in self._seen:
            return True
        self._seen[key] = frame  # holding the frame keeps its id from being reused
        if len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)
        return False

    def _messages(self, frame: Frame, direction: FrameDirection, text_kind: str) -> list[dict[str, Any]]:
        p = self.params
        if isinstance(frame, BotStartedSpeakingFrame | BotStoppedSpeakingFrame):
            started = isinstance(frame, BotStartedSpeakingFrame)
            if started == self._bot_speaking:
                return []
            self._bot_speaking = started
            kind = "bot-started-speaking" if started else "bot-stopped-speaking"
            return [rtvi_event(kind)] if p.bot_speaking else []
        if isinstance(frame, MetricsFrame):
            # the shape the Pipecat client's onMetrics takes: {ttfb|processing: [{processor, value}]}
            return [rtvi_event("metrics", {frame.kind: [{"processor": frame.processor, "value": frame.value}]})]
        if direction is not DOWNSTREAM:
            return []
        if isinstance(frame, InterruptionFrame):
            return self._interrupted()
        if isinstance(frame, UserStartedSpeakingFrame):
            return [rtvi_event("user-started-speaking")] if p.user_speaking else []
        if isinstance(frame, UserStoppedSpeakingFrame):
            return [rtvi_event("user-stopped-speaking")] if p.user_speaking else []
        if isinstance(frame, UserTurnFrame):
            return [rtvi_event("user-llm-text", {"text": frame.text})] if p.user_llm_text else []
        if isinstance(frame, TranscriptionFrame):
            wanted = p.user_transcription if frame.final else p.interim_transcription
            if not wanted or not frame.text.strip():
                return []
            data = {
                "text": frame.text,
                "user_id": frame.user_id,
                "timestamp": iso_timestamp(frame.timestamp),
                "final": frame.final,
            }
            return [rtvi_event("user-transcription", data)]
        if isinstance(frame, LLMResponseStartFrame | LLMResponseEndFrame):
            started = isinstance(frame, LLMResponseStartFrame)
            if started == self._llm_open:
                return []
            self._llm_open = started
            return [rtvi_event("bot-llm-started" if started else "bot-llm-stopped")] if p.bot_llm else []
        if isinstance(frame, TTSStartedFrame | TTSStoppedFrame):
            started = isinstance(frame, TTSStartedFrame)
            if started == self._tts_open:
                return []
            self._tts_open = started
            return [rtvi_event("bot-tts-started" if started else "bot-tts-stopped")] if p.bot_tts else []
        if isinstance(frame, TextFrame) and frame.text:
            return self._text(frame.text, text_kind)
        return []

    def _text(self, text: str, kind: str) -> list[dict[str, Any]]:
        p = self.params
        if kind == "llm":
            return [rtvi_event("bot-llm-text", {"text": text})] if p.bot_llm else []
        out = []
        if p.bot_tts:
            out.append(rtvi_event("bot-tts-text", {"text": text}))
        if p.bot_output:
            out.append(rtvi_event("bot-output", {"text": text, "spoken": True, "aggregated_by": "sentence"}))
        return out

    def _interrupted(self) -> list[dict[str, Any]]:
        p = self.params
        if not (self._bot_speaking or self._llm_open or self._tts_open):
            return []
        out = [rtvi_event("bot-interrupted")] if p.bot_interrupted else []
        if self._tts_open:
            self._tts_open = False
            if p.bot_tts:
                out.append(rtvi_event("bot-tts-stopped"))
        if self._llm_open:
            self._llm_open = False
            if p.bot_llm:
                out.append(rtvi_event("bot-llm-stopped"))
        return out


class RTVITap(FrameProcessor):
    """Passes every frame on and lets its :class:`RTVIEvents` report what it saw here."""

    def __init__(self, owner: RTVIEvents, *, name: str | None = None, text_frames: TextKind = "auto") -> None:
        super().__init__(name=name)
        self.owner = owner
        self._point = _Point(text_frames)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.owner.observe(self._point, frame, direction, final_place=False)
        await self.push_frame(frame, direction)


def install_rtvi_events(processors: Sequence[FrameProcessor], owner: RTVIEvents | None = None) -> list[FrameProcessor]:
    """``processors`` with an RTVI tap before each and the events processor at the end.

    The owner is ``owner``, else the last ``RTVIEvents`` already in ``processors`` (a spec's
    ``rtvi.events`` entry, whose params then apply), else a new one with defaults. Other
    ``RTVIEvents`` entries are dropped. Put the result between the input and output
    transports.
    """
    listed = [p for p in processors if isinstance(p, RTVIEvents)]
    events = owner or (listed[-1] if listed else RTVIEvents(name="rtvi-events"))
    out: list[FrameProcessor] = []
    for processor in processors:
        if isinstance(processor, RTVIEvents):
            continue
        out.append(events.tap())
        out.append(processor)
    out.append(events)
    return out


__all__ = ["RTVIEvents", "RTVITap", "install_rtvi_events", "iso_timestamp", "rtvi_event"]
