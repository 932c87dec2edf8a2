"""The ``pipeline-run`` command as a server subprocess on 127.0.0.1, and a loopback client that keeps its audio."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from runner.client import SmallWebRTCClient
from runner.client.media import SAMPLE_RATE

CLI = str(Path(sys.executable).parent / "pipeline-run")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CliServer:
    """A running ``pipeline-run`` process: its URL and what it wrote to stderr so far."""

    url: str
    log_path: Path
    process: asyncio.subprocess.Process

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def wait_log(self, predicate: Callable[[str], bool], within: float = 20.0) -> str:
        """Poll stderr until ``predicate(text)`` holds; fails with the log when it does not in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not predicate(text := self.log()):
            if loop.time() > deadline or self.process.returncode is not None:
                raise AssertionError(f"server log never matched; it says:\n{text}")
            await asyncio.sleep(0.1)
        return text

    async def stop(self) -> int:
        """SIGTERM, then the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 20)


@contextlib.asynccontextmanager
async def cli_server(
    args: Sequence[str], log_path: Path, env: dict[str, str] | None = None
) -> AsyncIterator[CliServer]:
    """Run ``pipeline-run ARGS --port P --ice-host-address 127.0.0.1`` until /status answers; kill it on exit."""
    port = free_port()
    full_env = {**os.environ, "PIPELINE_RUN_LOG_FORMAT": "json", **(env or {})}
    with log_path.open("w") as log_file:
        process = await asyncio.create_subprocess_exec(
            CLI,
            *args,
            "--port",
            str(port),
            "--ice-host-address",
            "127.0.0.1",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
            env=full_env,
        )
    server = CliServer(f"http://127.0.0.1:{port}", log_path, process)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                if process.returncode is not None:
                    raise AssertionError(f"server exited with {process.returncode}:\n{server.log()}")
                try:
                    async with http.get(server.url + "/status") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("server did not come up:\n" + server.log())
        yield server
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@dataclass
class ListeningClient:
    """A loopback :class:`SmallWebRTCClient` that keeps the bot's audio and messages."""

    client: SmallWebRTCClient
    chunks: list[np.ndarray] = field(default_factory=list)
    app_messages: list[Any] = field(default_factory=list)
    rtvi_types: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, **kwargs: Any) -> ListeningClient:
        kwargs.setdefault("host_addresses", ["127.0.0.1"])
        listener = cls(SmallWebRTCClient(**kwargs))
        listener.client.add_audio_sink(lambda samples, _at: listener.chunks.append(np.array(samples, dtype=np.int16)))
        listener.client.add_event_handler("app-message", lambda _c, message: listener.app_messages.append(message))
        listener.client.add_event_handler(
            "rtvi-message", lambda _c, message: listener.rtvi_types.append(str(message.get("type")))
        )
        return listener

    @property
    def seconds(self) -> float:
        return sum(len(c) for c in self.chunks) / SAMPLE_RATE

    async def fresh_audio(self, seconds: float, within: float = 20.0) -> np.ndarray:
        """Forget what came so far and return the next ``seconds`` of the bot's audio."""
        self.chunks.clear()
        async with asyncio.timeout(within):
            while self.seconds < seconds:  # noqa: ASYNC110 - polling a list in a test
                await asyncio.sleep(0.05)
        return np.concatenate(self.chunks)[: int(seconds * SAMPLE_RATE)]


def dominant_frequency(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """The strongest frequency of ``samples``."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def rms_dbfs(samples: np.ndarray) -> float:
    """Level of int16 ``samples`` relative to full scale."""
    value = float(np.sqrt(np.mean(np.square(samples.astype(np.float64) / 32768.0))))
    return 20 * float(np.log10(max(value, 1e-10)))
