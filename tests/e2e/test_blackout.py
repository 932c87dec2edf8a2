"""Our Python client loses all UDP for a while, in the test's own network namespace.

Each scenario runs as a subprocess under ``unshare -n`` (tests/support/blackout.py): the server
(``pipelines/echo.yaml``) and the client share that namespace's loopback, and an nftables rule
drops UDP only there. Nothing here touches the host's firewall.
"""

from __future__ import annotations

import pytest

from tests.support.blackout import RESUMED_MESSAGE, namespace_problem, run_in_namespace

pytestmark = pytest.mark.timeout(150)


@pytest.fixture(autouse=True)
def _namespace_tools() -> None:
    problem = namespace_problem()
    if problem:  # ./dev test installs nftables: missing tools are an error, never a silent skip
        raise RuntimeError(f"blackout tests cannot run: {problem}")


def test_an_8_s_blackout_keeps_the_conversation_in_the_same_session() -> None:
    report = run_in_namespace(["python", "--blackout", "8", "--flow", "api"], timeout=120)
    before, after = report["before"], report["after"]
    assert after["session_id"] == before["session_id"], report  # not a brand-new bot
    assert (before["count"], after["count"]) == (1, 2), report  # the bot remembers the first question
    assert report["echo_after"] is True and report["client_state"] == "ready", report
    assert report["server_sessions"] == [before["session_id"]], report
    events = report["server_events"]
    assert events[0] == "suspended" and "resumed" in events, events
    assert events.index("resumed") < events.index("disconnected") < events.index("closed"), events
    assert report["server_counts"]["sessions"] == 0, report  # the clean close afterwards freed it
    assert RESUMED_MESSAGE in report["app_messages"], report  # the spec's on_client_resumed ran
    if report["offers"] > 1:  # the client restarted (rather than the pings resuming the same pc)
        assert report["pc_id_after"] != report["pc_id_before"], report
        assert events.index("pc-replaced") < events.index("resumed"), events


def test_a_40_s_blackout_ends_the_session_cleanly() -> None:
    report = run_in_namespace(["python", "--blackout", "40", "--flow", "start"], timeout=140)
    events = report["server_events"]
    assert events[0] == "suspended" and "resumed" not in events, events
    assert events.index("disconnected") < events.index("closed") < events.index("bot_finished"), events
    assert report["server_sessions"] == [report["before"]["session_id"]], report  # no second bot
    assert report["server_counts"]["sessions"] == 0, report
    assert report["client_state"] == "error", report
    assert report["client_events"][-2:] == ["error", "disconnected"], report
    assert RESUMED_MESSAGE not in report["app_messages"], report
    reason = report["disconnect_reason"]
    assert "404" in reason or "reconnection failed" in reason, reason
