"""``UserTurnAggregator`` (``conversation.user_turn``): the user's transcripts become one turn.

Place it after the STT and before the responder::

    input -> stt -> user_turn -> responder -> tts -> assistant_turn -> output

Final ``TranscriptionFrame`` s are collected while the user speaks (between
``UserStartedSpeakingFrame`` and ``UserStoppedSpeakingFrame``) and for
``late_transcript_secs`` after, since an STT often finishes after the VAD. An STT that
follows each utterance's transcripts with an ``UtteranceTranscribedFrame`` ends that wait
early: once every utterance the VAD has closed is marked transcribed and the user is silent,
the turn ends at once (the window is then only an upper bound, for STTs that never mark
their utterances or mark them late). The turn is then
added to the :class:`~runner.processors.conversation.context.Conversation` and pushed on as
a :class:`~runner.frames.UserTurnFrame` (a final ``TranscriptionFrame`` with the whole text,
so plain responders such as ``llm.rules`` answer it unchanged) and a ``ContextFrame`` for
context-aware responders. Without VAD frames a final transcript is a turn by itself.
Interim and per-utterance transcripts stop here.

Typed text: an RTVI ``send-text`` request (client-js ``sendText()``, arriving as an
``InputTransportMessageFrame``) is a user turn of its own, answered like a spoken one and kept
in the conversation; it interrupts the bot if it is speaking (when interruptions are allowed)
and is never dropped by ``min_words``. With ``run_immediately: false`` the text waits and joins
the user's next turn. See :mod:`runner.processors.rtvi.send_text` for what else is ignored.

Barge-in: the input transport pushes an ``InterruptionFrame`` right after
``UserStartedSpeakingFrame`` when the pipeline allows interruptions; this processor passes
it on, so the responder's and TTS's queues are flushed and the output transport clears its
track. With ``min_words`` > 0 an interruption that arrives while the bot speaks is held
until the user has said that many words (a cough or "uh-huh" does not cut the bot off);
a turn shorter than that, spoken over the bot, is dropped. ``generate_interruptions`` makes
this processor push the ``InterruptionFrame`` itself, for inputs whose VAD does not.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from pydantic import Field

from runner.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    ContextFrame,
    EndFrame,
    Frame,
    FrameDirection,
    InputTransportMessageFrame,
    InterruptionFrame,
    StartFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    UserTurnFrame,
    UtteranceTranscribedFrame,
)
from runner.processors.base import DOWNSTREAM, FrameProcessor, ProcessorParams
from runner.processors.conversation.context import METADATA_KEY, Conversation, join_text, shared_conversation
from runner.processors.rtvi.send_text import SendText, send_text_in

log = structlog.get_logger("runner.processors.conversation")


class UserTurnAggregator(FrameProcessor):
    """Collects one user turn of final transcripts and hands it to the responder."""

    class Params(ProcessorParams):
        """User turn settings."""

        system_prompt: str | None = Field(default=None, description="System prompt at the head of the conversation.")
        max_messages: int = Field(default=50, ge=1, le=10000, description="User/assistant messages kept in context.")
        context_key: str = Field(
            default="default", min_length=1, description="Name of the session conversation shared with assistant_turn."
        )
        late_transcript_secs: float = Field(
            default=0.4,
            ge=0,
            le=5,
            description=(
                "How long after the user stops speaking transcripts still join the turn, unless the STT "
                "marks the utterance transcribed (UtteranceTranscribedFrame) sooner."
            ),
        )
        push_transcription: bool = Field(
            default=True, description="Push the turn as a final TranscriptionFrame (UserTurnFrame)."
        )
        push_context: bool = Field(
            default=True, description="Push a ContextFrame with the conversation after each turn."
        )
        min_words: int = Field(
            default=0, ge=0, le=50, description="Words needed before the user can interrupt the speaking bot (0: any)."
        )
        generate_interruptions: bool = Field(
            default=False,
            description="Push an InterruptionFrame on UserStartedSpeakingFrame (the WebRTC input already does).",
        )

    params: Params

    def __init__(
        self, params: Params | None = None, *, name: str | None = None, conversation: Conversation | None = None
    ) -> None:
        super().__init__(name=name)
        self.params = params if params is not None else self.Params()
        self._conversation = conversation
        self._parts: list[str] = []
        self._words = 0
        self._user_id = ""
        self._speaking = False
        self._vad_seen = False
        self._bot_speaking = False
        self._held_interruption = False
        self._timer: asyncio.Task[None | None] | None = None
        self._window_open = False
        # VAD utterances stopped whose UtteranceTranscribedFrame has not arrived yet: counted,
        # not flagged, so a late mark for an earlier utterance cannot close a newer one
        self._unmarked = 0
        self.turns = 0
        self.dropped_turns = 0

    @property
    def conversation(self) -> Conversation:
        """The session's conversation (created when first needed)."""
        if self._conversation is None:
            p = self.params
            self._conversation = Conversation(p.system_prompt, max_messages=p.max_messages)
        return self._conversation

    @property
    def _damping(self) -> bool:
        return self.params.min_words > 0 and self._bot_speaking

    # ------------------------------------------------------------ lifecycle

    async def start(self, frame: StartFrame) -> None:
        if self._conversation is None:
            p = self.params
            self._conversation = shared_conversation(
                frame.metadata, p.context_key, system_prompt=p.system_prompt, max_messages=p.max_messages
            )
        else:
            frame.metadata.setdefault(METADATA_KEY, {}).setdefault(self.params.context_key, self._conversation)

    async def stop(self, frame: EndFrame) -> None:
        self._cancel_timer()
        if self._parts:
            await self._end_turn()

    async def cancel(self, frame: CancelFrame) -> None:
        self._cancel_timer()

    async def cleanup(self) -> None:
        self._cancel_timer()
        await super().cleanup()

    # ------------------------------------------------------------ frames

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, BotStartedSpeakingFrame | BotStoppedSpeakingFrame):
            self._bot_speaking = isinstance(frame, BotStartedSpeakingFrame)
            await self.push_frame(frame, direction)
        elif direction is not DOWNSTREAM:
            await self.push_frame(frame, direction)
        elif isinstance(frame, UserStartedSpeakingFrame):
            await self._user_started(frame)
        elif isinstance(frame, UserStoppedSpeakingFrame):
            await self._user_stopped(frame)
        elif isinstance(frame, InterruptionFrame):
            if self._damping and self._words < self.params.min_words:
                self._held_interruption = True  # released once enough words arrive
            else:
                await self.push_frame(frame, direction)
        elif isinstance(frame, UserTurnFrame):
            await self.push_frame(frame, direction)  # already a turn (from elsewhere): leave it alone
        elif isinstance(frame, TranscriptionFrame):
            await self._transcription(frame)
        elif isinstance(frame, UtteranceTranscribedFrame):
            await self._utterance_transcribed()
        elif isinstance(frame, InputTransportMessageFrame):
            await self.push_frame(frame, direction)
            request = send_text_in(frame.message)
            if request is not None:
                await self._typed(request)
        else:
            await self.push_frame(frame, direction)

    async def _user_started(self, frame: UserStartedSpeakingFrame) -> None:
        self._vad_seen = True
        self._speaking = True
        self._cancel_timer()  # the user goes on: the turn continues
        self._window_open = False
        await self.push_frame(frame, DOWNSTREAM)
        start = self.start_frame
        if self.params.generate_interruptions and start is not None and start.allow_interruptions:
            await self.process_frame(InterruptionFrame(), DOWNSTREAM)

    async def _user_stopped(self, frame: UserStoppedSpeakingFrame) -> None:
        self._vad_seen = True
        self._speaking = False
        self._unmarked += 1
        await self.push_frame(frame, DOWNSTREAM)
        self._arm_timer()

    async def _transcription(self, frame: TranscriptionFrame) -> None:
        text = frame.text.strip()
        if not text:
            return
        if frame.user_id:
            self._user_id = frame.user_id
        if not frame.final:
            await self._maybe_release(self._words + len(text.split()))
            return
        self._parts.append(text)
        self._words += len(text.split())
        await self._maybe_release(self._words)
        if self._speaking:
            return
        if not self._vad_seen or not self._window_open:
            # No VAD, or the grace window after the user stopped is over: a late
            # transcript completes the turn by itself.
            await self._end_turn()

    async def _utterance_transcribed(self) -> None:
        """The STT has sent all text of the oldest unmarked utterance: end the turn if it was the last."""
        self._unmarked = max(0, self._unmarked - 1)
        if self._speaking or self._unmarked:
            return  # the user goes on, or a later utterance's text is still to come
        self._cancel_timer()
        self._window_open = False
        if self._parts:
            await self._end_turn()

    async def _typed(self, request: SendText) -> None:
        text = request.content.strip()
        if not text:
            return
        self._parts.append(text)
        self._words += len(text.split())
        if not request.run_immediately:
            return  # joins the next turn
        self._cancel_timer()
        start = self.start_frame
        if self._bot_speaking and start is not None and start.allow_interruptions:
            self._held_interruption = False
            await self.push_frame(InterruptionFrame(), DOWNSTREAM)
        await self._end_turn(typed=True)

    async def _maybe_release(self, words: int) -> None:
        if self._held_interruption and words >= self.params.min_words:
            self._held_interruption = False
            log.debug("barge_in_released", processor=self.name, words=words)
            await self.push_frame(InterruptionFrame(), DOWNSTREAM)

    # ------------------------------------------------------------ the grace window

    def _arm_timer(self) -> None:
        self._cancel_timer()
        self._window_open = True
        self._timer = self.create_task(self._grace(), name="late-transcripts")

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and not timer.done() and timer is not asyncio.current_task():
            timer.cancel()

    async def _grace(self) -> None:
        await asyncio.sleep(self.params.late_transcript_secs)
        self._window_open = False
        if self._timer is asyncio.current_task():
            self._timer = None
        if self._parts and not self._speaking:
            await self._end_turn()

    # ------------------------------------------------------------ the turn

    async def _end_turn(self, *, typed: bool = False) -> None:
        text = join_text(self._parts)
        words = self._words
        self._parts.clear()
        self._words = 0
        self._window_open = False
        held, self._held_interruption = self._held_interruption, False
        if not text:
            return
        if not typed and (held or (self._damping and words < self.params.min_words)):
            self.dropped_turns += 1
            log.debug("user_turn_dropped", processor=self.name, words=words, reason="bot speaking, too few words")
            return
        self.turns += 1
        conversation = self.conversation
        conversation.add_user(text)
        log.debug("user_turn", processor=self.name, words=words)
        if self.params.push_transcription:
            turn = UserTurnFrame(text=text, user_id=self._user_id, timestamp=time.time(), final=True)
            await self.push_frame(turn, DOWNSTREAM)
        if self.params.push_context:
            await self.push_frame(ContextFrame(messages=conversation.messages), DOWNSTREAM)


__all__ = ["UserTurnAggregator"]
