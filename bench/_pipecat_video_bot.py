"""Reference video-transform bot on Pipecat 1.14, run by the reference venv's python.

    python bench/_pipecat_video_bot.py -t webrtc --host 127.0.0.1 --port 7861

Pipecat's video-transform pattern: SmallWebRTCTransport with camera in and video out at
640x480, the peer's camera captured on connect with ``capture_participant_video(pc_id,
framerate, video_source)`` (PROTOCOL.md §5.5), and a processor that turns each
``InputImageRawFrame`` into an ``OutputImageRawFrame``. The example uses OpenCV's Canny; for
a fair comparison the transform here is the same numpy Sobel our ``video.edges`` runs
(``BENCH_VIDEO_THRESHOLD``, default 120, edges white on black).

Loopback-only rig, as in ``_pipecat_echo_bot.py``: ``aioice.ice.get_host_addresses`` is
replaced in *this process* by one returning ``BENCH_HOST_ADDRESSES`` (default 127.0.0.1); no
ICE servers are configured. ``BENCH_VIDEO_LIVE=0`` switches ``video_out_is_live`` off.
"""

from __future__ import annotations

import os

import aioice.ice


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """Replacement for aioice's interface scan: the configured loopback address(es)."""
    wanted = os.environ.get("BENCH_HOST_ADDRESSES", "127.0.0.1").split(",")
    return [a for a in wanted if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


aioice.ice.get_host_addresses = _loopback_host_addresses

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from pipecat.frames.frames import Frame, InputImageRawFrame, OutputImageRawFrame  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.runner.types import RunnerArguments  # noqa: E402
from pipecat.transports.base_transport import TransportParams  # noqa: E402
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

WIDTH, HEIGHT = 640, 480
THRESHOLD = float(os.environ.get("BENCH_VIDEO_THRESHOLD", "120"))
LIVE = os.environ.get("BENCH_VIDEO_LIVE", "1") != "0"
WHITE = np.array([255, 255, 255], dtype=np.uint8)


# The same numpy code as runner/processors/video (luma_of, sobel_edges, paint), so both
# servers do identical work per frame; only the frameworks around it differ.


def luma_of(array: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Luminance (BT.601 weights, integer maths) of an RGB array."""
    y = array[..., 0] * np.uint16(77)
    y += array[..., 1] * np.uint16(150)
    y += array[..., 2] * np.uint16(29)
    y += np.uint16(128)
    y >>= 8
    return y.astype(np.uint8)


def sobel_edges(luma: npt.NDArray[np.uint8], threshold: float) -> npt.NDArray[np.bool_]:
    """Pixels whose separable 3x3 Sobel magnitude exceeds ``threshold``."""
    height, width = luma.shape
    mask = np.zeros((height, width), dtype=np.bool_)
    if height < 3 or width < 3:
        return mask
    y = luma.astype(np.int16)
    smooth_v = y[:-2] + y[1:-1] * np.int16(2) + y[2:]
    gx = (smooth_v[:, 2:] - smooth_v[:, :-2]).astype(np.int32)
    smooth_h = y[:, :-2] + y[:, 1:-1] * np.int16(2) + y[:, 2:]
    gy = (smooth_h[2:] - smooth_h[:-2]).astype(np.int32)
    gx *= gx
    gy *= gy
    gx += gy
    np.greater(gx, int(threshold * threshold), out=mask[1:-1, 1:-1])
    return mask


def paint(mask: npt.NDArray[np.bool_], color: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """An RGB picture: ``color`` where ``mask`` is set, black elsewhere."""
    on = mask.view(np.uint8)
    out = np.empty((*mask.shape, 3), dtype=np.uint8)
    for channel in range(3):
        np.multiply(on, color[channel], out=out[..., channel])
    return out


class EdgeDetection(FrameProcessor):
    """Camera frames in, Sobel edge pictures out (everything else passes)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputImageRawFrame) and frame.format == "RGB":
            width, height = frame.size
            rgb = np.frombuffer(frame.image, dtype=np.uint8).reshape(height, width, 3)
            edges = paint(sobel_edges(luma_of(rgb), THRESHOLD), WHITE)
            out = OutputImageRawFrame(image=edges.tobytes(), size=(width, height), format="RGB")
            await self.push_frame(out, direction)
        else:
            await self.push_frame(frame, direction)


async def bot(runner_args: RunnerArguments) -> None:
    """One video-transform session per peer connection."""
    transport = SmallWebRTCTransport(
        webrtc_connection=runner_args.webrtc_connection,
        params=TransportParams(
            video_in_enabled=True,
            video_out_enabled=True,
            video_out_is_live=LIVE,
            video_out_width=WIDTH,
            video_out_height=HEIGHT,
            video_out_framerate=30,
        ),
    )
    worker = PipelineWorker(Pipeline([transport.input(), EdgeDetection(), transport.output()]), params=PipelineParams())
    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(worker)

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport: SmallWebRTCTransport, connection: object) -> None:
        await transport.capture_participant_video(transport.get_client_id(connection), 30, "camera")

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: SmallWebRTCTransport, connection: object) -> None:
        await runner.cancel()

    await runner.run()


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
