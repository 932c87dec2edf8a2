"""``OpenAILLM`` (``llm.openai``): streaming replies from any OpenAI-compatible chat API."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Literal

import aiohttp
import structlog
from pydantic import Field, SecretStr
from runner.frames import (
    CancelFrame,
    ContextFrame,
    EndFrame,
    Frame,
    FrameDirection,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    StartFrame,
    TextFrame,
    TranscriptionFrame,
    UserTurnFrame,
)
from runner.processors.base import FrameProcessor, ProcessorParams
from runner.text import split_sentences

from pipeline_run_llm_openai.sse import ChatStreamError, chat_deltas

log = structlog.get_logger("pipeline_run_llm_openai")

Message = dict[str, str]


class OpenAIParams(ProcessorParams):
    """Where to send the conversation and how to answer."""

    base_url: str = Field(default="https://api.openai.com/v1", description="API root; /chat/completions is appended.")
    model: str = Field(default="gpt-4o-mini", min_length=1, description="Model name sent with each request.")
    api_key: SecretStr | None = Field(
        default=None, description="Bearer token, e.g. ${OPENAI_API_KEY}; unset = $OPENAI_API_KEY, else none sent."
    )
    system_prompt: str = Field(
        default="You are a helpful voice assistant. Answer briefly in plain spoken sentences, without markdown.",
        description="System message put in front of every request.",
    )
    temperature: float = Field(default=0.7, ge=0.0, le=2.0, description="Sampling temperature.")
    max_tokens: int | None = Field(default=None, gt=0, description="Upper bound on tokens per reply.")
    max_history: int = Field(
        default=20, ge=0, le=1000, description="User and assistant messages kept as context (0 = none)."
    )
    timeout_secs: float = Field(
        default=30.0, gt=0.0, le=600.0, description="Connect timeout and longest wait for the next streamed bytes."
    )
    fallback: str = Field(
        default="Sorry, I cannot answer right now.", description="Said when the request fails (the error is reported)."
    )
    context: Literal["auto", "own", "frames"] = Field(
        default="auto",
        description=(
            "Where the conversation comes from: 'own' = history kept here from final transcriptions; "
            "'frames' = ContextFrame from conversation.user_turn; 'auto' = ContextFrame when one comes, "
            "own history for plain transcriptions (a UserTurnFrame waits for its ContextFrame)."
        ),
    )


class OpenAIError(RuntimeError):
    """The API answered with an HTTP error."""


class OpenAILLM(FrameProcessor):
    """Answers each final ``TranscriptionFrame`` with a streamed chat completion.

    With ``conversation.user_turn`` in front, each ``ContextFrame`` is answered from its
    messages instead. Tokens are gathered into sentences, each pushed as a ``TextFrame``
    once complete, between ``LLMResponseStartFrame`` and ``LLMResponseEndFrame``. The own
    history (user transcripts and assistant replies) is trimmed to ``max_history``.
    An interruption cancels the HTTP request in flight; a failed request is reported
    upstream as a non-fatal error and answered with ``fallback``.
    """

    Params: ClassVar[type[OpenAIParams]] = OpenAIParams
    events: ClassVar[tuple[str, ...]] = ("on_response",)
    queue_size: ClassVar[int] = 32

    params: OpenAIParams

    def __init__(self, params: OpenAIParams | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params if params is not None else self.Params()
        self.history: list[Message] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return self.params.base_url.rstrip("/") + "/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        key = self.params.api_key.get_secret_value() if self.params.api_key else os.environ.get("OPENAI_API_KEY")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def start(self, frame: StartFrame) -> None:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.params.timeout_secs, sock_read=self.params.timeout_secs
        )
        self._session = aiohttp.ClientSession(timeout=timeout, headers=self._headers())

    async def stop(self, frame: EndFrame) -> None:
        await self._close()

    async def cancel(self, frame: CancelFrame) -> None:
        await self._close()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._close()

    async def _close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            return
        mode = self.params.context
        if isinstance(frame, ContextFrame) and mode != "own":
            await self.respond_to_context(frame.messages)
        elif isinstance(frame, TranscriptionFrame) and frame.final and mode != "frames":
            if mode == "auto" and isinstance(frame, UserTurnFrame):
                return  # conversation.user_turn sends the ContextFrame for this turn next
            text = " ".join(frame.text.split())
            if text:
                await self.respond(text)

    def messages(self) -> list[Message]:
        """What the next request sends: the system prompt and the kept history."""
        system = [{"role": "system", "content": self.params.system_prompt}] if self.params.system_prompt else []
        return system + self.history

    def _remember(self, role: str, content: str) -> None:
        self.history.append({"role": role, "content": content})
        keep = self.params.max_history
        del self.history[: max(0, len(self.history) - keep)]
        while self.history and self.history[0]["role"] != "user":
            del self.history[0]  # context must open with a user turn

    async def respond(self, text: str) -> None:
        """Answer ``text`` with the own history as context, and remember both."""
        messages = [*self.messages(), {"role": "user", "content": text}]
        self._remember("user", text)
        reply = await self._complete(messages, remember=True)
        if reply:
            await self._call_event_handler("on_response", text, reply)

    async def respond_to_context(self, messages: list[Message]) -> None:
        """Answer a conversation given by a ``ContextFrame`` (its owner keeps the history)."""
        messages = [dict(m) for m in messages]
        if self.params.system_prompt and not (messages and messages[0].get("role") == "system"):
            messages.insert(0, {"role": "system", "content": self.params.system_prompt})
        users = [m["content"] for m in messages if m.get("role") == "user"]
        if not users:
            return
        reply = await self._complete(messages, remember=False)
        if reply:
            await self._call_event_handler("on_response", users[-1], reply)

    async def _complete(self, messages: list[Message], *, remember: bool) -> str:
        payload: dict[str, Any] = {
            "model": self.params.model,
            "messages": messages,
            "temperature": self.params.temperature,
            "stream": True,
        }
        if self.params.max_tokens is not None:
            payload["max_tokens"] = self.params.max_tokens
        await self.push_frame(LLMResponseStartFrame())
        self.start_ttfb_metrics()
        self.start_processing_metrics()
        parts: list[str] = []
        pending = ""
        try:
            async for delta in self._stream(payload):
                if not parts:
                    await self.stop_ttfb_metrics()  # the first token
                parts.append(delta)
                sentences, pending = split_sentences(pending + delta)
                for sentence in sentences:
                    await self.push_frame(TextFrame(text=sentence + " "))
            if pending.strip():
                await self.push_frame(TextFrame(text=pending.strip() + " "))
        except asyncio.CancelledError:
            if parts and remember:
                self._remember("assistant", "".join(parts).strip())
            log.debug("llm_request_cancelled", processor=self.name)
            raise
        except (aiohttp.ClientError, TimeoutError, OpenAIError, ChatStreamError) as exc:
            self.metrics.reset()  # a failed request is not a measurement
            await self._failed_request(exc, bool(parts))
        await self.stop_processing_metrics()
        reply = "".join(parts).strip()
        if reply and remember:
            self._remember("assistant", reply)
        await self.push_frame(LLMResponseEndFrame())
        return reply

    async def _failed_request(self, exc: BaseException, partial: bool) -> None:
        reason = str(exc) or type(exc).__name__
        await self.push_error(f"chat completion via {self.url} failed: {reason}", fatal=False)
        if not partial and self.params.fallback:
            await self.push_frame(TextFrame(text=self.params.fallback + " "))

    async def _stream(self, payload: dict[str, Any]) -> AsyncIterator[str]:
        session = self._session
        if session is None or session.closed:
            raise OpenAIError("the processor has not been started")
        async with session.post(self.url, data=json.dumps(payload)) as response:
            if response.status >= 400:
                raise OpenAIError(f"HTTP {response.status}: {_error_message(await response.text())}")
            async for delta in chat_deltas(response.content):
                yield delta


def _error_message(body: str) -> str:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body.strip()[:200] or "(empty body)"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return body.strip()[:200]


__all__ = ["OpenAIError", "OpenAILLM", "OpenAIParams"]
