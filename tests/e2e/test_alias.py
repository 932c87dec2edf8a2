"""What a client hears back from pipelines/echo.yaml (16 kHz) when it sends a tone above 8 kHz."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest

from runner.build import make_bot
from runner.client import SmallWebRTCClient
from runner.client.media import SAMPLE_RATE, AudioSource
from runner.plugins import PluginRegistry
from runner.spec import load_spec
from tests.support.server import start_test_server

ECHO = Path(__file__).resolve().parents[2] / "pipelines" / "echo.yaml"
LOW, HIGH = 1000.0, 9000.0  # 9 kHz folds to 16 - 9 = 7 kHz in a 16 kHz pipeline
ALIAS = 16000.0 - HIGH
SETTLE_SECS, MEASURE_SECS = 1.0, 2.0


class TwoTones(AudioSource):
    """1 kHz and 9 kHz at the same level (each -12 dBFS, so the sum never clips)."""

    def samples(self, start: int, count: int) -> np.ndarray:
        t = np.arange(start, start + count) / SAMPLE_RATE
        wave = 0.25 * 32767 * (np.sin(2 * math.pi * LOW * t) + np.sin(2 * math.pi * HIGH * t))
        return np.rint(wave).astype(np.int16)


def band_db(x: np.ndarray, freq: float, width: float = 40.0) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.blackman(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    return float(10 * np.log10(spectrum[np.abs(freqs - freq) <= width].sum() + 1e-20))


@pytest.mark.timeout(90)
async def test_a_9_khz_tone_does_not_come_back_as_a_7_khz_alias() -> None:
    server = await start_test_server(make_bot(load_spec(ECHO, PluginRegistry.discover())))
    received: list[np.ndarray] = []
    client = SmallWebRTCClient(host_addresses=["127.0.0.1"], audio_track=TwoTones())
    client.add_audio_sink(lambda samples, _at: received.append(samples.copy()))
    needed = int((SETTLE_SECS + MEASURE_SECS) * SAMPLE_RATE)
    try:
        await client.connect(server.url + "/api/offer")
        async with asyncio.timeout(45):
            while True:  # the echo starts after a few frames of silence; measure once it has settled
                heard = np.concatenate(received) if received else np.zeros(0, dtype=np.int16)
                loud = np.flatnonzero(np.abs(heard.astype(np.int32)) > 3000)
                if len(loud) and len(heard) - loud[0] >= needed:
                    break
                await asyncio.sleep(0.2)
    finally:
        await client.disconnect()
        await server.runner.cleanup()
    start = int(loud[0] + SETTLE_SECS * SAMPLE_RATE)
    window = heard[start : int(loud[0]) + needed].astype(np.float64)
    tone_db, alias_db = band_db(window, LOW), band_db(window, ALIAS)
    assert tone_db > band_db(window, 3000.0) + 40, "the 1 kHz tone came back"
    assert alias_db <= tone_db - 60.0, f"7 kHz alias only {tone_db - alias_db:.1f} dB below the 1 kHz tone"
