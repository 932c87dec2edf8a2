"""The official JS client in Chromium loses all UDP for a while, in the test's own network namespace.

Chromium, the server (``pipelines/echo.yaml``) and the nftables drop rule all live in a namespace
made by ``unshare -n`` for one scenario (tests/support/blackout.py); the host's firewall is never
touched. 8 s is shorter than the client's restart delay (ICE ``disconnected`` for 5 s), so the same
pc comes back and its pings resume the suspended session; 14 s makes the client restart with its
old ``pc_id`` and ``restart_pc: true``, which resumes the same session on a new pc.
"""

from __future__ import annotations

import pytest

from tests.support.blackout import namespace_problem, run_in_namespace

pytestmark = pytest.mark.timeout(150)


@pytest.fixture(autouse=True)
def _namespace_tools() -> None:
    problem = namespace_problem()
    if problem:  # ./dev test installs nftables: missing tools are an error, never a silent skip
        raise RuntimeError(f"blackout tests cannot run: {problem}")


def _same_bot(report: dict[str, object]) -> None:
    before, after = report["before"], report["after"]
    assert isinstance(before, dict) and isinstance(after, dict), report
    assert after.get("session_id") == before["session_id"], report  # not a brand-new bot
    assert (before["count"], after.get("count")) == (1, 2), report  # it remembers the first question
    assert report["server_sessions"] == [before["session_id"]], report
    assert report["server_counts"]["sessions"] == 0, report  # type: ignore[index]  # freed by the clean close


def test_official_client_survives_an_8_s_blackout_on_the_same_pc() -> None:
    report = run_in_namespace(["browser", "--blackout", "8"], timeout=120)
    _same_bot(report)
    assert report["echo_after"] is True, report
    events = report["server_events"]
    assert isinstance(events, list)
    assert events[:2] == ["suspended", "resumed"], report
    assert events.index("resumed") < events.index("disconnected") < events.index("closed"), events


def test_official_client_restart_after_a_14_s_blackout_resumes_the_session() -> None:
    report = run_in_namespace(["browser", "--blackout", "14"], timeout=140)
    _same_bot(report)
    offers = report["offers"]
    assert isinstance(offers, list) and len(offers) == 2, report
    assert offers[1][1] is True and offers[1][0] is not None, offers  # restart_pc with the old pc_id
    assert report["bot_audio_after"] is True, report  # the bot's audio reaches the new pc
    events = report["server_events"]
    assert isinstance(events, list)
    assert events[:3] == ["suspended", "pc-replaced", "resumed"], report
