"""Reference echo bot on Pipecat 1.14 (PROTOCOL.md §9), run by the reference venv's python.

    python bench/_pipecat_echo_bot.py -t webrtc --host 127.0.0.1 --port 7861

Loopback-only rig: aioice never gathers 127.0.0.1, so before Pipecat starts this script
replaces ``aioice.ice.get_host_addresses`` in *this process* with one that returns only
the loopback address (``BENCH_HOST_ADDRESSES``, comma-separated, default ``127.0.0.1``).
That only changes which local addresses are gathered; everything else (runner, handler,
connection, transport, pipeline) is stock Pipecat, so the reference is measured fairly.
No ICE servers are configured (the runner then passes an explicit empty list to aiortc).
"""

from __future__ import annotations

import os

import aioice.ice


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """Replacement for aioice's interface scan: the configured loopback address(es)."""
    wanted = os.environ.get("BENCH_HOST_ADDRESSES", "127.0.0.1").split(",")
    return [a for a in wanted if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


aioice.ice.get_host_addresses = _loopback_host_addresses

from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.runner.types import RunnerArguments  # noqa: E402
from pipecat.transports.base_transport import TransportParams  # noqa: E402
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402


class Echo(FrameProcessor):
    """Turns each microphone frame into a speaker frame with the same audio."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            out = OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate, num_channels=frame.num_channels)
            await self.push_frame(out, direction)
        else:
            await self.push_frame(frame, direction)


async def bot(runner_args: RunnerArguments) -> None:
    """One echo session per peer connection."""
    transport = SmallWebRTCTransport(
        webrtc_connection=runner_args.webrtc_connection,
        params=TransportParams(audio_in_enabled=True, audio_out_enabled=True),
    )
    worker = PipelineWorker(
        Pipeline([transport.input(), Echo(), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=16000),
    )
    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(worker)

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: SmallWebRTCTransport, connection: object) -> None:
        await runner.cancel()

    await runner.run()


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
