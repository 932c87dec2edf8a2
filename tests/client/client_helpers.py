"""Helpers shared by the client tests: the echo pipeline bot, a switchable signalling proxy, audio checks."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np

from runner.client.media import SAMPLE_RATE

ECHO_SPEC = Path(__file__).resolve().parents[2] / "pipelines" / "echo.yaml"


def echo_pipeline_bot() -> Any:
    """The real echo pipeline of ``pipelines/echo.yaml``."""
    from runner.build import make_bot
    from runner.plugins import PluginRegistry
    from runner.spec import load_spec

    return make_bot(load_spec(ECHO_SPEC, PluginRegistry.discover()))


class SignallingProxy:
    """An HTTP hop in front of the server that the test can switch to failing (or stop)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fail_status: int | None = None
        self.requests: list[tuple[str, str, int]] = []
        self.bodies: list[tuple[str, Any]] = []
        self.url = ""
        self._runner: Any = None

    async def start(self) -> None:
        from aiohttp import ClientSession, web

        self._session = ClientSession()

        async def forward(request: web.Request) -> web.Response:
            if self.fail_status is not None:
                self.requests.append((request.method, request.path, self.fail_status))
                return web.json_response({"detail": "proxy says no"}, status=self.fail_status)
            body = await request.read()
            self.bodies.append((request.method, json.loads(body) if body else None))
            headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
            async with self._session.request(
                request.method, self.upstream + request.path_qs, data=body, headers=headers
            ) as resp:
                data = await resp.read()
                self.requests.append((request.method, request.path, resp.status))
                return web.Response(body=data, status=resp.status, content_type=resp.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        """Stop listening and drop open connections (the server is 'gone')."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._session.close()

    def offers(self) -> list[tuple[str, str, int]]:
        """The offer POSTs seen, with the status answered."""
        return [r for r in self.requests if r[0] == "POST" and r[1].endswith("api/offer")]


def write_tone_wav(path: Path, freq: float, secs: float, rate: int = 16000, dbfs: float = -12.0) -> None:
    """A mono 16-bit tone WAV file."""
    t = np.arange(int(secs * rate)) / rate
    samples = (32767 * 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def dominant_frequency(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """The strongest frequency of ``samples``."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])
