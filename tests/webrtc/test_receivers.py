"""Receivers nobody reads cost no thread and queue nothing; read ones keep working.

Real aiortc peers on loopback: a client offers many audio and video m-lines and sends media
on all of them; the server (a SmallWebRTCConnection with generous limits) reads only the
first. Threads, the server's frame queues and the process's memory stay bounded, and the echo
on the first m-line carries only its own tone.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
from collections.abc import AsyncIterator
from typing import Any

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from hypothesis import example, given
from hypothesis import strategies as st

from runner.limits import Limits
from runner.params import TransportParams
from runner.pipeline import Pipeline, PipelineParams, PipelineTask
from runner.webrtc.aiortc_internals import receiver_started, track_frame_queue
from runner.webrtc.connection import SmallWebRTCConnection
from runner.webrtc.ice import restrict_host_addresses
from runner.webrtc.receivers import AUDIO_QUEUE_FRAMES, FrameQueue
from runner.webrtc.transport import SmallWebRTCTransport
from tests.webrtc.test_transport import Camera, Echo, Mic, dominant_hz

pytestmark = pytest.mark.timeout(60)

AUDIO_LINES = 12
VIDEO_LINES = 4
GENEROUS = Limits(max_audio_sections=16, max_video_sections=16)


def decoder_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.endswith("-decoder"))


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


@contextlib.asynccontextmanager
async def flooding_client(conn: SmallWebRTCConnection) -> AsyncIterator[list[np.ndarray]]:
    """A client with AUDIO_LINES + VIDEO_LINES sending m-lines; yields the echo it hears (left pcm)."""
    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tracks: list[MediaStreamTrack] = []
    for i in range(AUDIO_LINES):
        mic = Mic(freq=440.0 + 150.0 * i)
        mic.on = True
        direction = "sendrecv" if i == 0 else "sendonly"
        client.addTransceiver("audio", direction=direction).sender.replaceTrack(mic)
        tracks.append(mic)
    for _ in range(VIDEO_LINES):
        camera = Camera()
        client.addTransceiver("video", direction="sendonly").sender.replaceTrack(camera)
        tracks.append(camera)
    heard: list[np.ndarray] = []
    readers: list[asyncio.Task[None]] = []

    @client.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def read() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame = await track.recv()
                    if isinstance(frame, av.AudioFrame):
                        heard.append(frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0])

        readers.append(asyncio.get_running_loop().create_task(read()))

    restrict_host_addresses(client, ["127.0.0.1"])
    await client.setLocalDescription(await client.createOffer())
    await conn.initialize(sdp=client.localDescription.sdp, type="offer")
    answer = conn.get_answer()
    assert answer is not None
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    try:
        yield heard
    finally:
        for reader in readers:
            reader.cancel()
        await client.close()
        for track in tracks:
            track.stop()


async def wait_until(check: Any, within: float = 15.0) -> None:
    """Poll ``check`` (media state has no event to wait on); ``within`` only bounds the wait."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_many_m_lines_start_one_decoder_and_queue_nothing_unread() -> None:
    conn = SmallWebRTCConnection(ice_servers=[], host_addresses=["127.0.0.1"], limits=GENEROUS)
    transport = SmallWebRTCTransport(conn, TransportParams(audio_in_enabled=True, audio_out_enabled=True))
    task = PipelineTask(
        Pipeline([transport.input(), Echo(), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=24000),
    )
    threads_before = decoder_threads()
    runner = asyncio.get_running_loop().create_task(task.run())
    try:
        async with flooding_client(conn) as heard:
            loud = lambda: sum(1 for pcm in heard if np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 1000)  # noqa: E731
            await wait_until(lambda: loud() >= 25)
            memory_before = resident_bytes()
            mark = len(heard)
            await wait_until(lambda: len(heard) >= mark + 200)  # 4 s of media on every m-line
            grown = resident_bytes() - memory_before
            pc = conn.pc
            assert pc is not None
            transceivers = pc.getTransceivers()
            assert len(transceivers) == AUDIO_LINES + VIDEO_LINES
            started = [i for i, t in enumerate(transceivers) if receiver_started(t.receiver)]
            queued = [q.qsize() for t in transceivers if (q := track_frame_queue(t.receiver.track)) is not None]
            threads = decoder_threads() - threads_before
            echo = np.concatenate(heard[-50:])
            print(f"{len(transceivers)} m-lines: started {started}, decoder threads +{threads}, rss +{grown >> 20} MiB")
            assert started == [0]  # only the microphone that is read
            assert threads <= 2  # its decoder and the client's receiver for the echo
            assert len(queued) == len(transceivers) and max(queued) <= AUDIO_QUEUE_FRAMES
            assert sum(queued[1:]) == 0
            assert grown < 32 << 20
            assert abs(dominant_hz(echo, 48000) - 440) < 15  # the first mic's tone, nobody else's
    finally:
        await task.cancel()
        await asyncio.wait_for(runner, 10)
    assert decoder_threads() <= threads_before


async def test_library_reader_of_a_track_opens_only_that_receiver() -> None:
    """Without our transport: reading ``audio_input_track()`` is all a library user does."""
    conn = SmallWebRTCConnection(ice_servers=[], host_addresses=["127.0.0.1"], limits=GENEROUS)
    try:
        async with flooding_client(conn):
            pc = conn.pc
            assert pc is not None
            await wait_until(lambda: pc.connectionState == "connected")
            await asyncio.sleep(0.5)  # media flows on every m-line, nobody reads
            assert not any(receiver_started(t.receiver) for t in pc.getTransceivers())
            track = conn.audio_input_track()
            assert track is not None
            frames = [await asyncio.wait_for(track.recv(), 10) for _ in range(25)]
            assert all(isinstance(f, av.AudioFrame) for f in frames)
            left = np.concatenate([f.to_ndarray().reshape(-1, len(f.layout.channels))[:, 0] for f in frames[-10:]])
            assert abs(dominant_hz(left, frames[-1].sample_rate) - 440) < 15
            assert [receiver_started(t.receiver) for t in pc.getTransceivers()].count(True) == 1
    finally:
        await conn.close()


async def test_a_reader_of_a_pc_closed_before_connecting_sees_the_track_end() -> None:
    conn = SmallWebRTCConnection(ice_servers=[], host_addresses=["127.0.0.1"])
    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    client.addTransceiver("audio", direction="sendrecv")
    restrict_host_addresses(client, ["127.0.0.1"])
    try:
        await client.setLocalDescription(await client.createOffer())
        await conn.initialize(sdp=client.localDescription.sdp, type="offer")  # the answer never reaches it
        track = conn.audio_input_track()
        assert track is not None
        reader = asyncio.get_running_loop().create_task(track.recv())
        await asyncio.sleep(0)
        await conn.close()
        with pytest.raises(MediaStreamError):
            await asyncio.wait_for(reader, 10)
    finally:
        await client.close()


# -- the bounded queue, as a model ----------------------------------------------------------------

OPS = st.lists(st.one_of(st.integers(min_value=0, max_value=1000), st.just("get"), st.just("end")), max_size=200)


@given(limit=st.integers(min_value=1, max_value=8), ops=OPS)
@example(limit=1, ops=[1, "end", 2, "get", "get"])
@example(limit=2, ops=["end", 1, 2, 3])
def test_frame_queue_keeps_the_newest_and_the_end(limit: int, ops: list[Any]) -> None:
    queue = FrameQueue(limit)
    model: list[Any] = []
    dropped, ended = 0, False
    for op in ops:
        if op == "get":
            if model:
                assert queue.get_nowait() == model.pop(0)
            continue
        item = None if op == "end" else op
        queue.put_nowait(item)
        if ended:  # after the end of the stream nothing more is kept
            dropped += item is not None
            continue
        if len(model) >= limit:
            model.pop(0)
            dropped += 1
        ended = item is None
        model.append(item)
        assert queue.qsize() <= limit
    assert [queue.get_nowait() for _ in range(queue.qsize())] == model
    assert queue.dropped == dropped
