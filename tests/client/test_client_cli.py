"""``pipeline-run connect`` end to end: the command as a subprocess against real servers.

Reports are checked for order (connected before bot-ready), counts (echo bursts, messages) and
what the audio holds, never for wall-clock durations: the machine may be loaded. Latency and
continuity figures belong to ``bench/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from runner.client.cli import main as connect_main
from tests.client.client_helpers import dominant_frequency, echo_pipeline_bot, write_tone_wav
from tests.support.server import RunningServer, StartServer

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
CONNECT = [sys.executable, "-m", "runner.client.cli"]


async def run_command(*args: str, within: float = 60.0) -> tuple[int, str, str]:
    """Run a command without blocking the event loop (the server lives in it)."""
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_connect_play_record_messages_codec(server: RunningServer, tmp_path: Path) -> None:
    source, recording = tmp_path / "in.wav", tmp_path / "out.wav"
    write_tone_wav(source, 500.0, 1.0)
    code, out, err = await run_command(
        *CONNECT,
        server.url + "/api/offer",
        "--play", str(source), "--loop",
        "--record", str(recording),
        "--send-message", '{"hello": "bot"}',
        "--request", 'weather={"city": "Oslo"}',
        "--audio-codec", "PCMU/8000",
        "--seconds", "2",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True and report["final_state"] == "disconnected"
    assert report["negotiated_audio"] == ["PCMU"]
    assert 0 < report["connected_ms"] <= report["bot_ready_ms"]
    assert report["audio_rms_dbfs"] > -30
    assert report["responses"] == [{"echo": {"city": "Oslo"}}]
    assert report["messages_out"] >= 2 and report["messages_in"] >= 2
    assert any(args == ({"hello": "bot"},) for name, args in server.recorder.events if name == "app-message")
    with wave.open(str(recording)) as w:
        assert w.getframerate() == 48000
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    # every received sample was recorded, and what came back is the tone that was sent (through PCMU)
    assert len(data) == pytest.approx(report["audio_seconds"] * 48000, abs=48)
    assert len(data) >= 12000
    assert dominant_frequency(data[-12000:]) == pytest.approx(500.0, abs=15)


async def test_human_summary_and_start_flow(server: RunningServer) -> None:
    code, out, err = await run_command(*CONNECT, server.url + "/start", "--start", "--tone", "440", "--seconds", "1")
    assert code == 0, err
    for label in ("result", "connected", "bot-ready", "audio received", "dBFS", "messages", "reconnects"):
        assert label in out
    assert server.recorder.infos and server.recorder.infos[0].session_id


async def test_http_404_exits_1(server: RunningServer) -> None:
    code, out, _ = await run_command(*CONNECT, server.url + "/sessions/bogus/api/offer", "--seconds", "1")
    assert code == 1
    assert "404" in out


async def test_load_mode_reports_echo_latency(start_server: StartServer) -> None:
    server = await start_server(echo_pipeline_bot())
    code, out, err = await run_command(
        *CONNECT, server.url + "/api/offer", "--clients", "3", "--seconds", "3", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    summary = report["summary"]
    assert summary["clients"] == summary["succeeded"] == 3
    assert len(report["clients"]) == 3
    # each client heard its own bursts come back (counted by onsets), after it sent them
    assert all(len(c["echo_ms"]) >= 2 and min(c["echo_ms"]) > 0 for c in report["clients"])
    assert all(c["audio_seconds"] > 0 and 0 < c["connected_ms"] <= c["bot_ready_ms"] for c in report["clients"])
    assert summary["echo_ms_median"] is not None and summary["bot_ready_ms_median"] is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_status(url: str, within: float = 20.0) -> None:
    async with asyncio.timeout(within), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + "/status") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)


async def test_against_pipeline_run_echo_yaml() -> None:
    exe = shutil.which("pipeline-run", path=str(Path(sys.executable).parent)) or shutil.which("pipeline-run")
    if exe is None:
        pytest.skip("pipeline-run is not installed")
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        exe, "pipelines/echo.yaml", "--port", str(port), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        await _wait_status(url)
        connect: list[str] = [*CONNECT]
        code, _, _ = await run_command(exe, "connect", "--help")
        if code == 0:
            connect = [exe, "connect"]  # wired into the main command
        code, out, err = await run_command(
            *connect, url + "/start", "--start", "--tone", "440", "--seconds", "2", "--json"
        )
        assert code == 0, err
        report = json.loads(out)
        assert report["ok"] and report["audio_rms_dbfs"] > -35
        assert 0 < report["connected_ms"] <= report["bot_ready_ms"]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


@pytest.mark.parametrize(
    "argv",
    [
        ["http://127.0.0.1:1/api/offer", "--play", "/no/such.wav"],
        ["http://127.0.0.1:1/api/offer", "--audio-codec", "speex"],
        ["ftp://nowhere/api/offer"],
        ["http://127.0.0.1:1/api/offer", "--host-address", "localhost"],
        ["http://127.0.0.1:1/api/offer", "--send-message", "{not json"],
        ["http://127.0.0.1:1/api/offer", "--clients", "0"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: Any) -> None:
    assert connect_main(argv) == 2
    assert "pipeline-run connect:" in capsys.readouterr().err


def test_argparse_usage_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        connect_main(["http://h/api/offer", "--tone", "440", "--play", "x.wav"])
    assert info.value.code == 2


def test_unreachable_exits_1(capsys: Any) -> None:
    assert connect_main(["http://127.0.0.1:9/api/offer", "--seconds", "1", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and "Cannot connect" in report["error"]
