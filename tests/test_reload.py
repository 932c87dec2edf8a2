"""`pipeline-run run --reload`: new sessions get the new spec, live sessions keep theirs, bad edits are refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runner.build import build_processors
from runner.plugins import PluginRegistry
from runner.reload import ReloadResult, SpecReloader
from runner.spec import SpecError
from tests.support.cli_server import CLI, ListeningClient, cli_server, dominant_frequency

TONE_SPEC = """\
version: 1
server: {max_sessions: MAX}
ice: {servers: []}
transport: {audio_out_enabled: true, audio_out_sample_rate: 16000}
pipeline: {audio_out_sample_rate: 16000}
processors:
  - {id: tone, type: audio.tone, frequency: FREQ, amplitude: 0.3}
"""
# `amplitud` is misspelt: line 7, column 34, as `validate` reports it
BAD_SPEC = TONE_SPEC.replace("frequency: FREQ, amplitude: 0.3", "amplitud: 0.3, frequency: FREQ")


def tone_spec(frequency: float, max_sessions: int = 32, *, valid: bool = True) -> str:
    text = TONE_SPEC if valid else BAD_SPEC
    return text.replace("FREQ", f"{frequency:g}").replace("MAX", str(max_sessions))


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return PluginRegistry.discover()


def frequency_of(reloader: SpecReloader) -> float:
    (tone,) = build_processors(reloader.current)
    return float(tone.params.frequency)  # type: ignore[attr-defined]


# -- the reloader against a real file, step by step -----------------------------------------

Step = tuple[str, float, int]  # (what, frequency, max_sessions)
STEPS = st.one_of(
    st.tuples(st.just("valid"), st.sampled_from([220.0, 440.0, 880.0]), st.sampled_from([32, 8])),
    st.tuples(st.just("invalid"), st.sampled_from([300.0, 600.0]), st.just(32)),
    st.tuples(st.just("delete"), st.just(0.0), st.just(32)),
    st.tuples(st.just("rewrite"), st.just(0.0), st.just(32)),  # the same bytes again
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEPS, max_size=8))
@example(steps=[("valid", 880.0, 8), ("invalid", 300.0, 32), ("valid", 440.0, 32)])
@example(steps=[("invalid", 300.0, 32), ("valid", 440.0, 32)])  # back to v1's text: restored, not a new version
@example(steps=[("delete", 0.0, 32), ("valid", 440.0, 32), ("valid", 880.0, 32)])
def test_the_spec_in_force_is_always_the_last_valid_file(
    steps: list[Step], registry: PluginRegistry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("reload") / "bot.yaml"
    path.write_text(tone_spec(440.0))
    reloader = SpecReloader.open(path, registry)
    applied, seen, version, frequency = path.read_text(), path.read_text(), 1, 440.0

    async def scenario() -> None:
        nonlocal applied, seen, version, frequency
        assert (await reloader.check()).status == "unchanged"
        for what, new_frequency, max_sessions in steps:
            text: str | None
            if what == "delete":
                path.unlink(missing_ok=True)
                text = None
            else:
                if what == "rewrite":
                    text = path.read_text() if path.exists() else applied
                else:
                    text = tone_spec(new_frequency, max_sessions, valid=what == "valid")
                path.write_text(text)
            result = await reloader.check()
            content = "missing" if text is None else text
            if content == seen:
                assert result.status == "unchanged", (what, result)
            elif text is None:
                assert result.status == "missing"
            elif text == applied:
                assert result.status == "restored"
            elif what == "invalid" or (what == "rewrite" and "amplitud:" in text):
                assert result.status == "invalid"
                assert [str(i).split(": ", 1)[0] for i in result.issues] == [f"{path}:7:34"]
            else:
                assert result.status == "reloaded"
                version, frequency, applied = version + 1, new_frequency, text
                # the server started with max_sessions 32: any other value waits for a restart
                assert result.ignored == ([] if "max_sessions: 32" in text else ["server.max_sessions"])
            seen = content
            assert result.version == reloader.version == version
            assert frequency_of(reloader) == frequency

    asyncio.run(scenario())


def test_a_bad_file_at_start_is_refused_with_every_position(registry: PluginRegistry, tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(tone_spec(440.0, valid=False))
    with pytest.raises(SpecError) as error:
        SpecReloader.open(path, registry)
    assert [str(i) for i in error.value.issues][0].startswith(f"{path}:7:34: processors[0].amplitud:")
    with pytest.raises(SpecError, match="no such file"):
        SpecReloader.open(tmp_path / "missing.yaml", registry)


async def test_watch_reports_each_change_once_and_survives_a_broken_report(
    registry: PluginRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(tone_spec(440.0))
    reloader = SpecReloader.open(path, registry, interval=0.01)
    reports: list[ReloadResult] = []
    changed = asyncio.Event()

    def report(_reloader: SpecReloader, result: ReloadResult) -> None:
        reports.append(result)
        changed.set()
        if len(reports) == 1:
            raise RuntimeError("a report that fails")  # logged by the watcher, which goes on

    watcher = asyncio.create_task(reloader.watch(report))
    try:
        for text in (tone_spec(880.0), tone_spec(880.0, valid=False)):
            changed.clear()
            path.write_text(text)
            await asyncio.wait_for(changed.wait(), 10)
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher
    assert [r.status for r in reports] == ["reloaded", "invalid"]
    assert frequency_of(reloader) == 880.0


# -- the command, with real sessions --------------------------------------------------------


@pytest.mark.timeout(120)
async def test_new_sessions_get_the_new_spec_and_live_ones_keep_theirs(tmp_path: Path) -> None:
    spec = tmp_path / "tone.yaml"
    spec.write_text(tone_spec(440.0))
    clients: list[ListeningClient] = []

    async def join(url: str) -> ListeningClient:
        listener = ListeningClient.create()
        clients.append(listener)
        await listener.client.connect(url + "/api/offer")
        return listener

    async def tone_of(listener: ListeningClient) -> float:
        return dominant_frequency(await listener.fresh_audio(0.6))

    async with cli_server([str(spec), "--reload"], tmp_path / "server.log") as server:  # the short form of `run`
        try:
            a = await join(server.url)
            assert await tone_of(a) == pytest.approx(440.0, abs=10)

            spec.write_text(tone_spec(880.0, max_sessions=8))
            log = await server.wait_log(lambda text: "new sessions get version 2" in text)
            assert f"{spec}: server.max_sessions: changed; ignored until the server restarts" in log
            b = await join(server.url)
            assert await tone_of(b) == pytest.approx(880.0, abs=10)
            assert await tone_of(a) == pytest.approx(440.0, abs=10)

            spec.write_text(tone_spec(1320.0, valid=False))
            log = await server.wait_log(lambda text: "version 2 stays in force" in text)
            # (not subprocess.run: blocking the loop would starve the clients' keepalive pings)
            validate = await asyncio.create_subprocess_exec(CLI, "validate", str(spec), stdout=asyncio.subprocess.PIPE)
            stdout, _ = await asyncio.wait_for(validate.communicate(), 60)
            assert validate.returncode == 1
            problems = stdout.decode().strip().splitlines()
            assert problems and problems[0].startswith(f"{spec}:7:34: processors[0].amplitud:")
            for line in problems:  # the same lines `validate` prints
                assert line in log.splitlines()
            c = await join(server.url)
            assert await tone_of(c) == pytest.approx(880.0, abs=10)
            assert [await tone_of(x) for x in (a, b)] == [pytest.approx(440.0, abs=10), pytest.approx(880.0, abs=10)]
        finally:
            for listener in clients:
                await listener.client.disconnect()
        assert await server.stop() == 0
    log = server.log()
    assert "Traceback" not in log
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert [e["version"] for e in events if e.get("event") == "spec_reloaded"] == [2]
    assert [e["version"] for e in events if e.get("event") == "spec_reload_refused"] == [2]
    assert sum(1 for e in events if e.get("event") == "session_started") == 3


def test_a_bad_spec_at_start_exits_1_with_positions_even_with_reload(tmp_path: Path) -> None:
    import subprocess

    spec = tmp_path / "bad.yaml"
    spec.write_text(tone_spec(440.0, valid=False))
    result = subprocess.run([CLI, str(spec), "--reload"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{spec}:7:34: processors[0].amplitud: unknown key 'amplitud'; did you mean 'amplitude'?" in result.stderr
    assert "Traceback" not in result.stderr
