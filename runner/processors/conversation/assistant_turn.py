"""``AssistantTurnAggregator`` (``conversation.assistant_turn``): what the bot said, into the context.

Place it after the TTS, right before the output transport (or the RTVI events processor)::

    ... -> responder -> tts -> assistant_turn -> output

A TTS pushes each piece's ``TextFrame`` after that piece's audio, and the output transport
takes audio with backpressure, so the text seen here is text the user has heard. It is
collected per response and committed to the session's
:class:`~runner.processors.conversation.context.Conversation` when the response ends
(``LLMResponseEndFrame``, the bot stops speaking, ``EndFrame``) or the user's next turn
is recorded. On an ``InterruptionFrame`` only what was said so far is kept (the piece being
spoken when the user barged in never reaches here). Every frame passes on unchanged.
"""

from __future__ import annotations

import structlog
from pydantic import Field

from runner.frames import (
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    FrameDirection,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    StartFrame,
    TextFrame,
    TTSSpeakFrame,
)
from runner.processors.base import DOWNSTREAM, FrameProcessor, ProcessorParams
from runner.processors.conversation.context import METADATA_KEY, Conversation, shared_conversation

log = structlog.get_logger("runner.processors.conversation")


class AssistantTurnAggregator(FrameProcessor):
    """Collects the bot's spoken text of each response into the conversation."""

    class Params(ProcessorParams):
        """Assistant turn settings."""

        context_key: str = Field(
            default="default", min_length=1, description="Name of the session conversation shared with user_turn."
        )
        commit_on_bot_stopped: bool = Field(
            default=True, description="Commit the collected text when the bot stops speaking."
        )
        interrupted_marker: str = Field(
            default="", max_length=200, description="Appended to a response cut off by the user, e.g. '(interrupted)'."
        )

    params: Params

    def __init__(
        self, params: Params | None = None, *, name: str | None = None, conversation: Conversation | None = None
    ) -> None:
        super().__init__(name=name)
        self.params = params if params is not None else self.Params()
        self._conversation = conversation
        self.responses = 0
        self.interruptions = 0

    @property
    def conversation(self) -> Conversation:
        """The session's conversation (created when first needed)."""
        if self._conversation is None:
            self._conversation = Conversation()
        return self._conversation

    async def start(self, frame: StartFrame) -> None:
        if self._conversation is None:
            self._conversation = shared_conversation(frame.metadata, self.params.context_key)
        else:
            frame.metadata.setdefault(METADATA_KEY, {}).setdefault(self.params.context_key, self._conversation)

    async def interrupted(self) -> None:
        text = self.conversation.commit_assistant(interrupted=True, marker=self.params.interrupted_marker)
        if text:
            self.interruptions += 1
            log.debug("assistant_turn_interrupted", processor=self.name, kept_chars=len(text))

    async def stop(self, frame: EndFrame) -> None:
        self._commit()

    async def cancel(self, frame: CancelFrame) -> None:
        self._commit()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is DOWNSTREAM:
            if isinstance(frame, TextFrame | TTSSpeakFrame):
                self.conversation.append_assistant(frame.text)
            elif isinstance(frame, LLMResponseStartFrame | LLMResponseEndFrame):
                self._commit()
        elif isinstance(frame, BotStoppedSpeakingFrame) and self.params.commit_on_bot_stopped:
            self._commit()
        await self.push_frame(frame, direction)

    def _commit(self) -> None:
        if self.conversation.commit_assistant():
            self.responses += 1


__all__ = ["AssistantTurnAggregator"]
