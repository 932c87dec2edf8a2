"""The data-channel fuzz target's own checks: a session that dies is reported, and a fresh peer goes on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.datachannel import TEXT, Frame, expected_answer, fuzzer
from tests.fuzz.harness import FuzzEnv

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def env() -> Iterator[FuzzEnv]:
    fuzz = FuzzEnv()
    fuzz.start()
    try:
        yield fuzz
    finally:
        fuzz.stop()


def test_a_dead_fuzz_peer_is_a_failure_and_is_replaced(env: FuzzEnv) -> None:
    fuzz = fuzzer(env)
    request = Frame(TEXT, b'{"label": "rtvi-ai", "type": "client-message", "id": "q1", "data": {"t": "x"}}')
    assert env.call(fuzz.batch([request, Frame(TEXT, b"[1]", repeat=3)])) == []
    assert fuzz.outcomes["fuzzed request -> server-response"] == 1
    assert fuzz.conn is not None
    first = fuzz.conn
    env.call(first.close())  # the server ends the session behind the fuzzing peer's back
    problems = env.call(fuzz.batch([Frame(TEXT, b"{}")]))
    assert len(problems) == 1 and "fuzz peer died before case 1" in problems[0], problems
    assert fuzz.peers_opened == 2 and fuzz.conn is not first and not fuzz.conn.closed
    assert fuzz.junk_totals() == {"unexpected_json": 3}  # the dead peer's counts are kept
    env.call(fuzz.close())


def test_the_oracle_expects_answers_only_to_usable_requests() -> None:
    def rid(payload: bytes) -> str | None:
        return expected_answer(Frame(TEXT, payload))

    assert rid(b'{"label": "rtvi-ai", "type": "client-ready", "id": "a"}') == "a"
    assert rid(b'{"label": "rtvi-ai", "type": ["x"], "id": "b"}') == "b"  # error-response
    assert rid(b'{"label": "rtvi-ai", "type": "send-text", "id": "c", "data": {"content": "hi"}}') is None  # user text
    assert rid(b'{"label": "rtvi-ai", "type": "send-text", "id": "e"}') == "e"  # malformed: error-response
    assert rid(b'{"label": "rtvi-ai", "type": "client-ready", "id": 5}') is None
    assert rid(b'{"label": "rtvi-ai", "type": "client-ready", "id": "' + b"i" * 129 + b'"}') is None
    assert rid(b'ping{"label": "rtvi-ai", "type": "client-ready", "id": "d"}') is None
    assert rid(b'{"label": "rtvi-ai", "type": "client-ready", "id": "\xff"}') is None
