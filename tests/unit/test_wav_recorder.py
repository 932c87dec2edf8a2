"""``audio.wav_recorder``: path templates, never replacing a file, a valid file after every end."""

from __future__ import annotations

import asyncio
import resource
import signal
import string
import wave
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from runner.frames import EndFrame, Frame, FrameDirection, InputAudioRawFrame, StartFrame
from runner.pipeline.pipeline import Pipeline
from runner.pipeline.task import PipelineParams, PipelineTask
from runner.plugins import PluginRegistry
from runner.processors.base import FrameProcessor
from runner.processors.builtin.wav import PATH_PLACEHOLDERS, WavRecorder, check_path_template, render_path
from runner.spec import SpecError, parse_spec
from runner.testing import run_processor

RATE = 16000
CHUNK = 320  # 20 ms


def chunk(index: int, freq: float = 440.0) -> bytes:
    n = np.arange(index * CHUNK, (index + 1) * CHUNK)
    return np.rint(8000 * np.sin(2 * np.pi * freq * n / RATE)).astype(np.int16).tobytes()


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def read_back(path: Path) -> bytes:
    """The samples of a WAV file whose header agrees with its size."""
    with wave.open(str(path), "rb") as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (RATE, 1, 2)
        frames = reader.getnframes()
        data = reader.readframes(frames)
    assert path.stat().st_size == 44 + frames * 2, "header sizes match the data"
    return data


literal = st.text(alphabet=st.characters(blacklist_characters="{}/\\\x00", codec="utf-8"), max_size=8)


@given(parts=st.lists(st.tuples(literal, st.sampled_from(PATH_PLACEHOLDERS)), max_size=4), tail=literal)
@example(parts=[("rec-", "session_id"), ("-", "date"), ("T", "time")], tail=".wav")
def test_known_placeholders_render_completely(parts: list[tuple[str, str]], tail: str) -> None:
    template = "".join(f"{text}{{{name}}}" for text, name in parts) + tail
    check_path_template(template)
    now = datetime(2026, 12, 4, 19, 5, 7, tzinfo=UTC)
    rendered = str(render_path(Path(template or "x"), "abc123", now))
    for text, name in parts:
        assert text in rendered
        assert {"session_id": "abc123", "date": "2026-12-04", "time": "190507"}[name] in rendered
    assert "{" not in rendered and "}" not in rendered


@given(name=st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=12))
@example(name="sesion_id")
@example(name="pc_id")
def test_unknown_placeholders_are_refused_by_name(name: str) -> None:
    if name in PATH_PLACEHOLDERS:
        return
    with pytest.raises(ValidationError, match=rf"unknown placeholder \{{{name}\}}.*\{{session_id\}}"):
        WavRecorder.Params(path=Path(f"rec/{{{name}}}.wav"))


@pytest.mark.parametrize(
    ("path", "message"),
    [("rec/{session_id", "bad path template"), ("rec/{date:%Y}.wav", "takes no format"), ("a/{}.wav", r"\{\}")],
)
def test_malformed_templates_get_a_clear_message(path: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WavRecorder.Params(path=Path(path))


def test_the_spec_reports_an_unknown_placeholder_at_its_line() -> None:
    spec = "version: 1\nprocessors:\n  - id: rec\n    type: audio.wav_recorder\n    path: rec/{sesion_id}.wav\n"
    with pytest.raises(SpecError) as info:
        parse_spec(spec, PluginRegistry.discover(), file="bad.yaml", env={})
    (issue,) = info.value.issues
    assert (issue.line, issue.path) == (5, "processors[0].path")
    assert "unknown placeholder {sesion_id}" in issue.message


async def test_the_session_id_names_the_file_and_nothing_is_replaced(tmp_path: Path) -> None:
    params = WavRecorder.Params(path=tmp_path / "{session_id}.wav")
    start = StartFrame(audio_in_sample_rate=RATE, session_id="s-1")
    for expected in ("s-1.wav", "s-1-1.wav", "s-1-2.wav"):
        recorder = WavRecorder(params)
        await run_processor(recorder, [InputAudioRawFrame(chunk(i), RATE) for i in range(5)], start_frame=start)
        assert recorder.path == tmp_path / expected
    assert names(tmp_path) == ["s-1-1.wav", "s-1-2.wav", "s-1.wav"]
    assert all(read_back(tmp_path / name) == b"".join(chunk(i) for i in range(5)) for name in names(tmp_path))


class FailsAt(FrameProcessor):
    """Raises on the ``n``-th audio frame: a processor bug in the middle of a session."""

    def __init__(self, n: int) -> None:
        super().__init__(name="fails")
        self.n, self.seen = n, 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame):
            self.seen += 1
            if self.seen == self.n:
                raise RuntimeError("boom")
        await self.push_frame(frame, direction)


async def test_a_pipeline_error_leaves_a_valid_file_with_everything_before_it(tmp_path: Path) -> None:
    recorder = WavRecorder(WavRecorder.Params(path=tmp_path / "{session_id}.wav"))
    task = PipelineTask(Pipeline([recorder, FailsAt(4)]), params=PipelineParams(audio_in_sample_rate=RATE))
    runner = asyncio.ensure_future(task.run())
    await task.queue_frames([InputAudioRawFrame(chunk(i), RATE) for i in range(10)])
    await asyncio.wait_for(runner, 10)
    assert task.error is not None
    data = read_back(recorder.path)
    assert data[: 4 * CHUNK * 2] == b"".join(chunk(i) for i in range(4)), "frames up to the error are kept"


async def test_cancelling_the_run_leaves_a_valid_file(tmp_path: Path) -> None:
    recorder = WavRecorder(WavRecorder.Params(path=tmp_path / "rec.wav"))
    task = PipelineTask(Pipeline([recorder]), params=PipelineParams(audio_in_sample_rate=RATE))
    runner = asyncio.ensure_future(task.run())
    await task.queue_frames([InputAudioRawFrame(chunk(i), RATE) for i in range(25)])
    async with asyncio.timeout(10):
        while recorder.frames_written < 25 * CHUNK:  # noqa: ASYNC110 - the writer works on a thread
            await asyncio.sleep(0.01)
    runner.cancel()  # as the server does to every session on shutdown
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert read_back(tmp_path / "rec.wav") == b"".join(chunk(i) for i in range(25))


@pytest.fixture
def file_size_limit() -> Iterator[int]:
    """Files this process writes may not grow past 64 KiB (EFBIG instead of SIGXFSZ), as a full disk."""
    limit = 64 * 1024
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old_limit[1]))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


async def test_a_failing_disk_ends_the_session_with_a_valid_shorter_file(tmp_path: Path, file_size_limit: int) -> None:
    recorder = WavRecorder(WavRecorder.Params(path=tmp_path / "rec.wav"))
    task = PipelineTask(Pipeline([recorder]), params=PipelineParams(audio_in_sample_rate=RATE))
    runner = asyncio.ensure_future(task.run())
    count = file_size_limit // (CHUNK * 2) + 50  # well past the limit
    await task.queue_frames([InputAudioRawFrame(chunk(i), RATE) for i in range(count)])
    await asyncio.wait_for(runner, 10)
    assert task.error is not None and "cannot write WAV file" in task.error.error and "rec.wav" in task.error.error
    data = read_back(tmp_path / "rec.wav")
    assert 0 < len(data) <= file_size_limit - 44
    assert data == b"".join(chunk(i) for i in range(count))[: len(data)], "what was kept is the start, intact"


async def test_audio_beyond_the_buffer_is_dropped_and_counted_never_blocking(tmp_path: Path) -> None:
    recorder = WavRecorder(WavRecorder.Params(path=tmp_path / "rec.wav", buffer_secs=0.05))  # 2.5 chunks
    task = PipelineTask(Pipeline([recorder]), params=PipelineParams(audio_in_sample_rate=RATE))
    runner = asyncio.ensure_future(task.run())
    await task.queue_frames([InputAudioRawFrame(chunk(i), RATE) for i in range(20)])  # all at once
    await task.queue_frame(EndFrame())
    await asyncio.wait_for(runner, 10)
    data = read_back(tmp_path / "rec.wav")
    assert recorder.frames_dropped > 0
    assert len(data) // 2 + recorder.frames_dropped == 20 * CHUNK, "every sample is either on disk or counted"
    assert task.error is None
