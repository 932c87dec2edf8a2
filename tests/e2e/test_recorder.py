"""``audio.wav_recorder`` in a real server: one file per session, valid after the client leaves or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import wave
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from runner.build import make_bot
from runner.client import SmallWebRTCClient
from runner.client.media import SAMPLE_RATE, ToneSource
from runner.plugins import PluginRegistry
from runner.spec import load_spec
from tests.support.cli_server import cli_server
from tests.support.server import start_test_server

SPEC = """\
version: 1
server: {{host: 127.0.0.1, port: 7860}}
ice: {{servers: []}}
transport:
  {{audio_in_enabled: true, audio_in_sample_rate: 16000, audio_out_enabled: true, audio_out_sample_rate: 16000}}
pipeline: {{audio_in_sample_rate: 16000, audio_out_sample_rate: 16000}}
processors:
  - {{id: rec, type: audio.wav_recorder, path: "{dir}/{{session_id}}-{{date}}.wav"}}
  - {{id: echo, type: audio.echo}}
events:
  on_client_disconnected: [{{action: end}}]
"""


def write_spec(tmp_path: Path) -> tuple[Path, Path]:
    recordings = tmp_path / "recordings"
    spec = tmp_path / "rec.yaml"
    spec.write_text(SPEC.format(dir=recordings))
    return spec, recordings


def read_back(path: Path) -> np.ndarray:
    """The samples of a finished WAV file (its header must agree with its size)."""
    with wave.open(str(path), "rb") as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (16000, 1, 2)
        frames = reader.getnframes()
        data = np.frombuffer(reader.readframes(frames), dtype=np.int16)
    assert path.stat().st_size == 44 + frames * 2
    return data


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * 16000 / len(samples))


async def hear_echo(client: SmallWebRTCClient, url: str, secs: float = 1.0) -> None:
    """Connect and wait until ``secs`` of loud echo came back (so audio reached the recorder)."""
    loud: list[int] = []
    client.add_audio_sink(lambda s, _t: loud.append(len(s)) if np.abs(s.astype(np.int32)).max() > 2000 else None)
    await client.connect(url)
    async with asyncio.timeout(30):
        while sum(loud) < secs * SAMPLE_RATE:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def wait_no_sessions(base: str) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(20):
        while True:
            async with http.get(base + "/status") as response:
                status = await response.json()
            if status.get("sessions", status.get("active_sessions")) == 0:
                return
            await asyncio.sleep(0.1)


@pytest.mark.timeout(90)
async def test_two_sessions_write_two_files_each_with_its_own_audio(tmp_path: Path) -> None:
    spec, recordings = write_spec(tmp_path)
    server = await start_test_server(make_bot(load_spec(spec, PluginRegistry.discover())))
    clients = [
        SmallWebRTCClient(host_addresses=["127.0.0.1"], audio_track=ToneSource(freq)) for freq in (440.0, 1250.0)
    ]
    try:
        await asyncio.gather(*(hear_echo(c, server.url + "/api/offer") for c in clients))
        await asyncio.gather(*(c.disconnect() for c in clients))  # the clients leave
        await wait_no_sessions(server.url)
    finally:
        await server.runner.cleanup()
    files = sorted(recordings.iterdir())
    assert len(files) == 2, files
    assert all("{" not in f.name for f in files)
    heard = sorted(round(dominant_hz(read_back(f)[8000:])) for f in files)  # past the first 0.5 s
    assert [abs(h - f) < 20 for h, f in zip(heard, (440, 1250), strict=True)] == [True, True], heard
    assert all(len(read_back(f)) >= 16000 for f in files)  # at least the second of echo we waited for


@pytest.mark.timeout(90)
async def test_sigterm_mid_session_leaves_a_finished_recording(tmp_path: Path) -> None:
    spec, recordings = write_spec(tmp_path)
    log_path = tmp_path / "server.log"
    client = SmallWebRTCClient(host_addresses=["127.0.0.1"], audio_track=ToneSource(700.0))
    async with cli_server([str(spec)], log_path) as server:
        try:
            await hear_echo(client, server.url + "/api/offer", secs=1.5)
            server.process.send_signal(signal.SIGTERM)  # with the client still connected and talking
            assert await asyncio.wait_for(server.process.wait(), 20) == 0, server.log()
        finally:
            await client.disconnect()
    assert "Traceback" not in log_path.read_text()
    (recording,) = recordings.iterdir()
    samples = read_back(recording)
    assert len(samples) >= 1.5 * 16000
    assert abs(dominant_hz(samples[8000:]) - 700) < 20
    assert '"wav_recorded"' in log_path.read_text()
