"""``Conversation``: the messages of one session, shared by its user and assistant aggregators.

Messages are ``{"role": ..., "content": ...}`` dicts (roles ``system``, ``user``,
``assistant``), the system prompt always first. The assistant's words are collected in a
pending buffer and committed as one message when its response ends, is interrupted, or the
user's next turn arrives (so the order in the history is always the order of speech).

One object per session: the aggregators find it through the pipeline's ``StartFrame``
metadata (see :func:`shared_conversation`), never through module state.
"""

from __future__ import annotations

from typing import Any

ROLES = frozenset({"system", "user", "assistant"})
#: ``StartFrame.metadata`` key prefix under which a session's conversations live.
METADATA_KEY = "conversation"


class Conversation:
    """A bounded chat history with a system prompt.

    ``max_messages`` bounds the user/assistant messages kept (the system prompt does not
    count); the oldest go first, and a history never starts with an assistant message
    when a user one can lead.
    """

    def __init__(
        self,
        system_prompt: str | None = None,
        *,
        max_messages: int = 50,
        messages: list[dict[str, str]] | None = None,
    ) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self.system_prompt = system_prompt
        self.max_messages = max_messages
        self._messages: list[dict[str, str]] = []
        self._pending: list[str] = []
        self.interrupted_responses = 0
        for message in messages or []:
            self.add_message(message["role"], message["content"])

    def __repr__(self) -> str:
        return f"<Conversation {len(self._messages)} messages, pending={bool(self._pending)}>"

    # ------------------------------------------------------------ reading

    @property
    def messages(self) -> list[dict[str, str]]:
        """A copy of the history, system prompt first (pending assistant text excluded)."""
        out = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        out.extend(dict(m) for m in self._messages)
        return out

    @property
    def pending_text(self) -> str:
        """Assistant text collected but not yet committed."""
        return join_text(self._pending)

    def last(self, role: str | None = None) -> dict[str, str] | None:
        """The newest message (of ``role``, if given), or None."""
        for message in reversed(self._messages):
            if role is None or message["role"] == role:
                return dict(message)
        return None

    # ------------------------------------------------------------ writing

    def add_message(self, role: str, content: str) -> None:
        """Append one message; consecutive messages of one role are merged."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (expected one of {sorted(ROLES)})")
        content = content.strip()
        if not content:
            return
        if role == "system":
            self.system_prompt = content
            return
        if self._messages and self._messages[-1]["role"] == role:
            self._messages[-1]["content"] = join_text([self._messages[-1]["content"], content])
        else:
            self._messages.append({"role": role, "content": content})
        self._trim()

    def add_user(self, text: str) -> None:
        """Record a completed user turn (commits the assistant's pending words first)."""
        self.commit_assistant()
        self.add_message("user", text)

    def append_assistant(self, text: str) -> None:
        """Collect a piece of what the bot said (committed later)."""
        if text.strip():
            self._pending.append(text)

    def commit_assistant(self, *, interrupted: bool = False, marker: str = "") -> str:
        """Move the pending assistant text into the history; returns what was committed."""
        text = join_text(self._pending)
        self._pending.clear()
        if interrupted:
            self.interrupted_responses += 1
            if text and marker:
                text = join_text([text, marker])
        if text:
            self.add_message("assistant", text)
        return text

    def discard_pending(self) -> None:
        """Forget the pending assistant text."""
        self._pending.clear()

    def clear(self) -> None:
        """Forget the history (the system prompt stays)."""
        self._messages.clear()
        self._pending.clear()

    def _trim(self) -> None:
        excess = len(self._messages) - self.max_messages
        if excess > 0:
            del self._messages[:excess]
        while len(self._messages) > 1 and self._messages[0]["role"] == "assistant":
            del self._messages[0]


def join_text(parts: list[str]) -> str:
    """Join text pieces with single spaces where a piece does not bring its own."""
    out = ""
    for part in parts:
        if not part:
            continue
        if out and not out[-1].isspace() and not part[0].isspace():
            out += " "
        out += part
    return " ".join(out.split())


def shared_conversation(
    metadata: dict[str, Any],
    key: str = "default",
    *,
    system_prompt: str | None = None,
    max_messages: int | None = None,
) -> Conversation:
    """The session's conversation ``key``, created on first use.

    ``metadata`` is the pipeline's ``StartFrame.metadata``: one dict per pipeline run, seen
    by every processor, so two aggregators of one session find the same object and two
    sessions never do. Settings given here fill in what the creator left unset.
    """
    store = metadata.setdefault(METADATA_KEY, {})
    conversation = store.get(key)
    if not isinstance(conversation, Conversation):
        conversation = Conversation(system_prompt, max_messages=max_messages or 50)
        store[key] = conversation
    else:
        if system_prompt and not conversation.system_prompt:
            conversation.system_prompt = system_prompt
        if max_messages is not None:
            conversation.max_messages = max_messages
    return conversation


__all__ = ["METADATA_KEY", "Conversation", "join_text", "shared_conversation"]
