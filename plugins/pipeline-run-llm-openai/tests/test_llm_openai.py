"""OpenAI-compatible LLM against a local fake chat-completions server (SSE) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from runner.frames import (
    ContextFrame,
    ErrorFrame,
    InterruptionFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    TextFrame,
    TranscriptionFrame,
    UserTurnFrame,
)
from runner.testing import run_processor
from runner.text import split_sentences

from pipeline_run_llm_openai import OpenAILLM, OpenAIParams
from pipeline_run_llm_openai.sse import chat_deltas


@dataclass
class FakeAPI:
    """Speaks enough of POST /v1/chat/completions (stream=true) for the tests."""

    tokens: list[str] = field(default_factory=lambda: ["Hel", "lo there", ". How", " are", " you", "?"])
    delay: float = 0.0
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    three_sent: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.auth.append(request.headers.get("Authorization"))
        self.requests.append(await request.json())
        if self.status != 200:
            return web.json_response({"error": {"message": "invalid api key"}}, status=self.status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        self.started.set()
        try:
            await response.write(b": keep-alive comment\n\n")
            for token in self.tokens:
                chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": token}}]}
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.sent += 1
                if self.sent == 3:
                    self.three_sent.set()
                await asyncio.sleep(self.delay)
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return response


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeAPI, str]]:
    fake = FakeAPI()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("/v1"))
    finally:
        await server.close()


def llm(base_url: str, **params: Any) -> OpenAILLM:
    return OpenAILLM(OpenAIParams.model_validate({"base_url": base_url, "api_key": "sk-test", **params}))


def texts(frames: list[TextFrame]) -> list[str]:
    return [f.text.strip() for f in frames]


async def test_streams_sentences_with_auth_and_system_prompt(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    run = await run_processor(llm(url, system_prompt="Be brief.", model="m1"), [TranscriptionFrame("hi")])
    assert run.error is None
    assert texts(run.of_type(TextFrame)) == ["Hello there.", "How are you?"]
    assert isinstance(run.down[0], TranscriptionFrame) and isinstance(run.down[1], LLMResponseStartFrame)
    assert isinstance(run.down[-1], LLMResponseEndFrame)
    assert fake.auth == ["Bearer sk-test"]
    request = fake.requests[0]
    assert request["model"] == "m1" and request["stream"] is True
    assert request["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


async def test_history_is_sent_and_trimmed(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    processor = llm(url, max_history=3, system_prompt="")
    frames = [TranscriptionFrame("one"), TranscriptionFrame("two"), TranscriptionFrame("three")]
    await run_processor(processor, frames)
    assert [m["content"] for m in fake.requests[1]["messages"]] == ["one", "Hello there. How are you?", "two"]
    # max_history=3 keeps the last user/assistant turns, always starting with a user turn
    assert [m["role"] for m in fake.requests[2]["messages"]] == ["user", "assistant", "user"]
    assert fake.requests[2]["messages"][0]["content"] == "two"
    assert processor.history[-1] == {"role": "assistant", "content": "Hello there. How are you?"}


async def test_context_frames_from_the_user_turn_aggregator(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    history = [
        {"role": "system", "content": "Conversation prompt."},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    processor = llm(url)
    run = await run_processor(processor, [UserTurnFrame("c"), ContextFrame(messages=history)])
    assert fake.requests and len(fake.requests) == 1  # the UserTurnFrame itself is not answered
    assert fake.requests[0]["messages"] == history
    assert texts(run.of_type(TextFrame)) == ["Hello there.", "How are you?"]
    assert processor.history == []  # the aggregator owns the conversation


async def test_context_mode_own_ignores_context_frames(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    frames = [UserTurnFrame("hi"), ContextFrame(messages=[{"role": "user", "content": "hi"}])]
    await run_processor(llm(url, context="own", system_prompt="S"), frames)
    assert len(fake.requests) == 1
    assert fake.requests[0]["messages"] == [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]


async def test_interim_transcriptions_are_not_answered(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    run = await run_processor(llm(url), [TranscriptionFrame("hm", final=False)])
    assert not fake.requests and not run.of_type(TextFrame)


async def test_http_error_is_non_fatal_and_spoken(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    fake.status = 401
    run = await run_processor(llm(url, fallback="I am offline."), [TranscriptionFrame("hi")])
    assert run.error is None
    errors = run.of_type(ErrorFrame, "up")
    assert errors and not errors[0].fatal and "HTTP 401: invalid api key" in errors[0].error
    assert texts(run.of_type(TextFrame)) == ["I am offline."]


async def test_unreachable_server_is_non_fatal() -> None:
    run = await run_processor(llm("http://127.0.0.1:9/v1", timeout_secs=2), [TranscriptionFrame("hi")])
    assert run.error is None and run.of_type(ErrorFrame, "up")
    assert texts(run.of_type(TextFrame)) == ["Sorry, I cannot answer right now."]


async def test_interruption_cancels_the_request(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    fake.tokens = ["First sentence. "] + ["word "] * 200
    fake.delay = 0.02
    processor = llm(url)

    async def interrupt() -> None:
        await fake.three_sent.wait()
        await processor.queue_frame(InterruptionFrame())

    interrupter = asyncio.ensure_future(interrupt())
    run = await run_processor(processor, [TranscriptionFrame("talk a lot")], timeout=10)
    await interrupter
    await asyncio.wait_for(fake.disconnected.wait(), 5)
    assert fake.sent < len(fake.tokens)
    assert texts(run.of_type(TextFrame)) == ["First sentence."]
    assert run.of_type(InterruptionFrame)
    assert processor.history[-1]["role"] == "assistant"  # the partial reply is remembered


async def test_sse_parsing_and_sentence_cutting() -> None:
    async def lines() -> AsyncIterator[bytes]:
        for line in [
            b": c\n",
            b"event: x\n",
            b'data: {"choices":[{"delta":{"content":"a"}}]}\n',
            b"\n",
            b'data: {"choices":[{"delta":{}}]}\n',
            b"\n",
            b"data: [DONE]\n",
            b"\n",
            b"data: {}\n",
        ]:
            yield line

    assert [d async for d in chat_deltas(lines())] == ["a"]
    assert split_sentences("Pi is 3.14 exactly. Or") == (["Pi is 3.14 exactly."], "Or")


def test_api_key_is_secret() -> None:
    params = OpenAIParams.model_validate({"api_key": "sk-secret"})
    assert "sk-secret" not in repr(params) and "sk-secret" not in params.model_dump_json()
