"""The session registry against a model: hypothesis drives create, connect, attach, suspend,
resume, restart, close, bot end and expiry in any order, and the invariants hold after each step.

The registry's own objects are used throughout: real :class:`SmallWebRTCConnection`s (never
offered, so no network) whose ``suspended`` / ``resumed`` / ``closed`` events are fired the way
the connection fires them, and bots that run until the test lets them finish.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, precondition, rule

from runner.server.config import SessionInfo
from runner.server.sessions import Session, SessionRegistry, SessionState, SessionStateError
from runner.webrtc import SmallWebRTCConnection

MAX_SESSIONS = 4
TTL_SECS = 60.0


class RegistryMachine(RuleBasedStateMachine):
    """Model: each session's expected state, its pc ids, and the reservations outstanding."""

    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.registry = SessionRegistry(MAX_SESSIONS, pending_ttl_secs=TTL_SECS, bot_grace_secs=60.0)
        self.model: dict[str, SessionState] = {}
        self.objects: dict[str, Session] = {}
        self.finish: dict[str, asyncio.Event] = {}
        self.pc_ids: dict[str, set[str]] = {}
        self.reserved = 0
        self.serial = 0

    # -- helpers ------------------------------------------------------------------------------

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def settle(self) -> None:
        """Let spawned tasks (end(), bots) run until nothing changes."""

        async def spin() -> None:
            for _ in range(20):
                await asyncio.sleep(0)
            await asyncio.sleep(0.06)  # disconnect() waits 50 ms for peerLeft to leave
            for _ in range(20):
                await asyncio.sleep(0)

        self.run(spin())

    def in_state(self, *states: SessionState) -> list[str]:
        return [sid for sid, state in self.model.items() if state in states]

    def holding_slots(self) -> int:
        return sum(1 for state in self.model.values() if state is not SessionState.ENDED)

    # -- rules --------------------------------------------------------------------------------

    @rule(target=sessions)
    def create(self) -> str:
        ok = self.registry.reserve()
        assert ok == (self.holding_slots() + self.reserved < MAX_SESSIONS)
        if not ok:
            return ""
        session = self.registry.create({"n": self.serial}, reserved=True)
        self.serial += 1
        self.model[session.session_id] = SessionState.PENDING
        self.objects[session.session_id] = session
        self.pc_ids[session.session_id] = set()
        return session.session_id

    @rule()
    def reserve_and_release(self) -> None:
        if self.registry.reserve():
            self.reserved += 1
            self.registry.release()
            self.reserved -= 1

    @precondition(lambda self: self.reserved == 0)
    @rule()
    def unmatched_release_is_an_error(self) -> None:
        with pytest.raises(SessionStateError):
            self.registry.release()

    @rule(sid=sessions)
    def begin_connect(self, sid: str) -> None:
        if self.model.get(sid) is not SessionState.PENDING:
            return
        self.registry.begin_connect(self.objects[sid])
        self.model[sid] = SessionState.CONNECTING

    @rule(sid=sessions)
    def connect_fails(self, sid: str) -> None:
        if self.model.get(sid) is not SessionState.CONNECTING:
            return
        self.registry.connect_failed(self.objects[sid])
        self.model[sid] = SessionState.PENDING

    @rule(sid=sessions)
    def attach(self, sid: str) -> None:
        if self.model.get(sid) is not SessionState.CONNECTING:
            return
        finish = self.finish[sid] = asyncio.Event()

        async def bot(conn: SmallWebRTCConnection, info: SessionInfo) -> None:
            await finish.wait()

        async def attach() -> None:
            connection = SmallWebRTCConnection()
            self.registry.attach(self.objects[sid], connection, bot)

        self.run(attach())
        connection = self.objects[sid].connection
        assert connection is not None
        self.pc_ids[sid].add(connection.pc_id)
        self.model[sid] = SessionState.LIVE

    @rule(sid=sessions, how=st.sampled_from(["keepalive_timeout", "ice_or_dtls_failed"]))
    def suspend(self, sid: str, how: str) -> None:
        if self.model.get(sid) is not SessionState.LIVE:
            return
        connection = self.objects[sid].connection
        assert connection is not None
        self.run(connection._call_event_handler("suspended", how))
        self.model[sid] = SessionState.SUSPENDED

    @rule(sid=sessions, how=st.sampled_from(["pings_returned", "restart"]))
    def resume(self, sid: str, how: str) -> None:
        if self.model.get(sid) is not SessionState.SUSPENDED:
            return
        connection = self.objects[sid].connection
        assert connection is not None
        self.run(connection._call_event_handler("resumed", how))
        self.model[sid] = SessionState.LIVE

    @rule(sid=sessions)
    def restart_adds_a_pc_id(self, sid: str) -> None:
        if self.model.get(sid) not in (SessionState.LIVE, SessionState.SUSPENDED):
            return
        pc_id = f"restart-{self.serial}"
        self.serial += 1
        self.registry.add_pc_id(self.objects[sid], pc_id)
        self.pc_ids[sid].add(pc_id)

    @rule(sid=sessions)
    def connection_closes(self, sid: str) -> None:
        if self.model.get(sid) not in (SessionState.LIVE, SessionState.SUSPENDED):
            return
        connection = self.objects[sid].connection
        assert connection is not None
        self.run(connection.close())
        self.settle()
        self.model[sid] = SessionState.ENDING

    @rule(sid=sessions)
    def bot_finishes(self, sid: str) -> None:
        if self.model.get(sid) not in (SessionState.LIVE, SessionState.SUSPENDED, SessionState.ENDING):
            return
        self.finish[sid].set()
        self.settle()
        self.model[sid] = SessionState.ENDED

    @rule(sid=consumes(sessions))
    def pending_expires(self, sid: str) -> None:
        if self.model.get(sid) is not SessionState.PENDING:
            return
        self.objects[sid].created = time.monotonic() - TTL_SECS - 1
        self.registry.counts()
        self.model[sid] = SessionState.ENDED

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def states_match(self) -> None:
        for sid, state in self.model.items():
            assert self.objects[sid].state is state, (sid, self.objects[sid].state, state)

    @invariant()
    def counts_match(self) -> None:
        counts = self.registry.counts()
        assert counts["sessions"] == self.holding_slots()  # ENDING still holds its slot
        assert counts["connected"] == len(self.in_state(SessionState.LIVE))
        assert counts["suspended"] == len(self.in_state(SessionState.SUSPENDED))
        assert counts["sessions"] + self.reserved <= MAX_SESSIONS

    @invariant()
    def routing_matches(self) -> None:
        routable = (SessionState.LIVE, SessionState.SUSPENDED)
        for sid, pc_ids in self.pc_ids.items():
            for pc_id in pc_ids:
                expected = self.objects[sid] if self.model[sid] in routable else None
                assert self.registry.by_pc_id(pc_id) is expected
            in_registry = self.registry.get(sid)
            takes_offers = self.model[sid] in (*routable, SessionState.PENDING, SessionState.CONNECTING)
            assert (in_registry is not None) == takes_offers

    @invariant()
    def no_leaked_pc_ids(self) -> None:
        live_ids = {pc for sid, ids in self.pc_ids.items() if self.model[sid] is not SessionState.ENDED for pc in ids}
        assert set(self.registry._by_pc) <= live_ids

    def teardown(self) -> None:
        for event in self.finish.values():
            event.set()
        self.run(self.registry.close_all(1.0))
        self.loop.close()


RegistryMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestRegistryStates = RegistryMachine.TestCase


def test_illegal_transition_is_refused_and_named() -> None:
    session = Session(session_id="s")
    with pytest.raises(SessionStateError, match="pending -> live"):
        session._set_state(SessionState.LIVE, "test")
    assert session.state is SessionState.PENDING
