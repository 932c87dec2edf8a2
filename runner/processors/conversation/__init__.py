"""Conversation mechanics: the session's context and the user/assistant turn aggregators.

A voice pipeline with turns looks like::

    input -> stt -> conversation.user_turn -> responder -> tts -> conversation.assistant_turn -> output

Both aggregators of one session share one :class:`Conversation`, found through the
pipeline's ``StartFrame.metadata`` under their ``context_key`` (or passed explicitly).
"""

from __future__ import annotations

from runner.processors.conversation.assistant_turn import AssistantTurnAggregator
from runner.processors.conversation.context import Conversation, shared_conversation
from runner.processors.conversation.user_turn import UserTurnAggregator


def conversation_pair(
    system_prompt: str | None = None, *, max_messages: int = 50
) -> tuple[UserTurnAggregator, AssistantTurnAggregator]:
    """A user and an assistant aggregator sharing one new :class:`Conversation`."""
    conversation = Conversation(system_prompt, max_messages=max_messages)
    params = UserTurnAggregator.Params(system_prompt=system_prompt, max_messages=max_messages)
    return (
        UserTurnAggregator(params, conversation=conversation),
        AssistantTurnAggregator(conversation=conversation),
    )


__all__ = [
    "AssistantTurnAggregator",
    "Conversation",
    "UserTurnAggregator",
    "conversation_pair",
    "shared_conversation",
]
