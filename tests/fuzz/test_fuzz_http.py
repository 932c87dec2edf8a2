"""Property-based fuzzing of the HTTP edge against one real server (short profile; bench/fuzz.py runs long).

Properties checked for every case by :class:`FuzzEnv`: never a 5xx, a clear reason for every
refusal, no traceback in the log, no session left behind by a refusal. Across the module: the
good client connected meanwhile keeps its session and its echo, and once fuzzed sessions have
timed out, threads and memory are back near where they started.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import FuzzEnv
from tests.fuzz.properties import offer_case, patch_case, raw_case, start_case

pytestmark = [
    pytest.mark.timeout(240),
    # the server thread uses `random` (aioice ids) while hypothesis draws in this one
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),  # strategies holding whole offers
]

SHORT = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def env() -> Iterator[FuzzEnv]:
    fuzz = FuzzEnv()
    fuzz.start()
    try:
        yield fuzz
    finally:
        print("\n" + fuzz.report())
        fuzz.stop()


def _ok(env: FuzzEnv) -> None:
    assert not env.failures, env.failures[-1]


@settings(SHORT, max_examples=60)
@given(data=st.data())
def test_offers(env: FuzzEnv, data: st.DataObject) -> None:
    offer_case(env, data)
    _ok(env)


@settings(SHORT, max_examples=80)
@given(data=st.data())
def test_patches(env: FuzzEnv, data: st.DataObject) -> None:
    patch_case(env, data)
    _ok(env)


@settings(SHORT, max_examples=40)
@given(data=st.data())
def test_start_bodies(env: FuzzEnv, data: st.DataObject) -> None:
    start_case(env, data)
    _ok(env)


@settings(SHORT, max_examples=40)
@given(data=st.data())
def test_raw_http_framing(env: FuzzEnv, data: st.DataObject) -> None:
    raw_case(env, data)
    _ok(env)


def test_zz_good_client_kept_its_echo_and_nothing_leaked(env: FuzzEnv) -> None:
    """Runs last in the module (pytest keeps file order)."""
    env.assert_echo()
    after = env.settle()
    before = env.before
    assert before is not None
    assert after.sessions == 1, after  # only the good client's
    assert after.threads <= before.threads + 6, (before, after)  # + asyncio's default executor at most
    assert after.rss_mb - before.rss_mb < 200, (before, after)
    assert not env.watch.tracebacks, env.watch.tracebacks[:3]
    assert sum(n for (_, status), n in env.counts.items() if status >= 500) == 0
    env.assert_echo()
