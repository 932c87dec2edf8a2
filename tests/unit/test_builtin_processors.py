"""Built-in processors: passthrough, echo, tone, WAV recorder and player."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from runner.audio.pcm import float_to_pcm16, pcm16_to_float, sine
from runner.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    FrameDirection,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    StartFrame,
    TextFrame,
)
from runner.pipeline import Pipeline, PipelineParams, PipelineTask
from runner.plugins import PluginRegistry
from runner.processors.base import FrameProcessor, ProcessorParams
from runner.processors.builtin import AudioEcho, Passthrough, ToneSource, WavPlayer, WavRecorder
from runner.testing import assert_frames, run_processor


def _tone_pcm(freq: float, rate: int, secs: float, amplitude: float = 0.5) -> bytes:
    samples, _ = sine(freq, rate, int(rate * secs), amplitude=amplitude)
    return float_to_pcm16(samples)


def _peak_frequency(pcm: bytes, rate: int) -> float:
    samples = pcm16_to_float(pcm)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def _write_wav(path: Path, pcm: bytes, rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)


def test_entry_points_resolve_to_builtins() -> None:
    registry = PluginRegistry.discover()
    expected = {
        "passthrough": Passthrough,
        "audio.echo": AudioEcho,
        "audio.tone": ToneSource,
        "audio.wav_recorder": WavRecorder,
        "audio.wav_player": WavPlayer,
    }
    for name, cls in expected.items():
        assert registry.processor(name) is cls
        assert issubclass(cls.Params, ProcessorParams)
        assert cls.Params.model_json_schema()["type"] == "object"


def test_params_reject_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        ToneSource.Params.model_validate({"frequency": 440, "volume": 1})
    with pytest.raises(ValueError):
        ToneSource.Params(amplitude=1.5)


async def test_passthrough() -> None:
    run = await run_processor(Passthrough(name="p"), [TextFrame("a"), InputAudioRawFrame(b"\0\0", 16000)])
    assert_frames(run.down, [TextFrame, InputAudioRawFrame])


async def test_echo_turns_input_into_output() -> None:
    audio = _tone_pcm(300, 16000, 0.02)
    run = await run_processor(AudioEcho(), [InputAudioRawFrame(audio, 16000, 1), TextFrame("t")])
    assert_frames(run.down, [OutputAudioRawFrame, TextFrame])
    out = run.of_type(OutputAudioRawFrame)[0]
    assert (out.audio, out.sample_rate, out.num_channels) == (audio, 16000, 1)


async def test_echo_can_pass_input_on() -> None:
    params = AudioEcho.Params(pass_input=True)
    run = await run_processor(AudioEcho(params), [InputAudioRawFrame(b"\1\0" * 320, 8000, 2)])
    assert_frames(run.down, [OutputAudioRawFrame, InputAudioRawFrame])
    assert run.down[0].num_channels == 2  # type: ignore[attr-defined]


def _mic(n: int, waited_secs: float) -> InputAudioRawFrame:
    """Chunk ``n`` (its first sample is ``n``) that the transport received ``waited_secs`` ago."""
    return InputAudioRawFrame(n.to_bytes(2, "little") * 320, 16000, 1, received_at=time.monotonic() - waited_secs)


async def test_echo_skips_a_backlog_until_it_has_caught_up() -> None:
    # 3 on time, 5 that waited behind a stall (0.5 s down to 0.1 s), then one 50 ms late (still
    # catching up: above catch_up_ms), then on time again: the backlog's frames are not echoed.
    waits = [0.0, 0.0, 0.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.0, 0.0, -0.01]
    echo = AudioEcho()
    run = await run_processor(echo, [_mic(n, w) for n, w in enumerate(waits)])
    echoed = [int.from_bytes(f.audio[:2], "little") for f in run.of_type(OutputAudioRawFrame)]
    assert echoed == [0, 1, 2, 9, 10, 11]
    assert echo.frames_skipped == 6


async def test_echo_without_a_lag_limit_echoes_everything() -> None:
    echo = AudioEcho(AudioEcho.Params(max_lag_ms=0))
    run = await run_processor(echo, [_mic(n, 1.0) for n in range(5)] + [InputAudioRawFrame(b"\0\0" * 320, 16000)])
    assert len(run.of_type(OutputAudioRawFrame)) == 6 and echo.frames_skipped == 0


async def test_tone_frequency_and_amount() -> None:
    params = ToneSource.Params(frequency=1000, amplitude=0.5, duration_secs=0.5, realtime=False, end_when_done=True)
    run = await run_processor(ToneSource(params), send_end=False, start_frame=StartFrame(audio_out_sample_rate=16000))
    chunks = run.of_type(OutputAudioRawFrame)
    assert len(chunks) == 25
    assert all(c.sample_rate == 16000 and c.num_frames == 320 for c in chunks)
    pcm = b"".join(c.audio for c in chunks)
    assert len(pcm) == 2 * 8000
    assert abs(_peak_frequency(pcm, 16000) - 1000) <= 4
    samples = pcm16_to_float(pcm)
    assert abs(float(np.max(np.abs(samples))) - 0.5) < 0.01
    # phase continuity: no sample-to-sample jump larger than the sine's own slope
    max_step = 2 * np.pi * 1000 / 16000 * 0.5
    assert float(np.max(np.abs(np.diff(samples)))) <= max_step * 1.01


async def test_tone_explicit_rate_and_chunk() -> None:
    params = ToneSource.Params(sample_rate=8000, chunk_ms=10, duration_secs=0.105, realtime=False, end_when_done=True)
    run = await run_processor(ToneSource(params), send_end=False)
    chunks = run.of_type(OutputAudioRawFrame)
    assert [c.num_frames for c in chunks] == [80] * 10 + [40]
    assert {c.sample_rate for c in chunks} == {8000}


async def test_tone_realtime_is_paced() -> None:
    # A realtime tone of unlimited duration cannot produce much more audio than time went by.
    tone = ToneSource(ToneSource.Params(sample_rate=16000))
    task = PipelineTask(Pipeline([tone, _Sink()]), params=PipelineParams(audio_out_sample_rate=16000))
    loop = asyncio.get_running_loop()
    begun = loop.time()
    runner = asyncio.ensure_future(task.run())
    await asyncio.sleep(0.2)
    await task.end()
    await asyncio.wait_for(runner, 5)
    elapsed = loop.time() - begun
    produced = sum(f.duration for f in _Sink.frames if isinstance(f, OutputAudioRawFrame))
    assert produced > 0
    assert produced <= elapsed + 0.05  # one chunk ahead at most, never a burst
    assert not tone.source_running


async def test_tone_stops_on_cancel() -> None:
    tone = ToneSource(ToneSource.Params(realtime=True))
    task = PipelineTask(Pipeline([tone]))
    runner = asyncio.ensure_future(task.run())
    await asyncio.sleep(0.05)
    assert tone.source_running
    await task.cancel()
    await asyncio.wait_for(runner, 2)
    assert not tone.source_running


class _Sink(FrameProcessor):
    frames: ClassVar[list[Frame]] = []

    async def start(self, frame: StartFrame) -> None:
        type(self).frames = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        type(self).frames.append(frame)
        await self.push_frame(frame, direction)


async def test_wav_recorder_writes_input_audio(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "rec.wav"
    chunk = _tone_pcm(440, 16000, 0.02)
    frames: list[Frame] = [InputAudioRawFrame(chunk, 16000) for _ in range(10)]
    frames.insert(3, OutputAudioRawFrame(b"\x10\x00" * 480, 24000))  # not recorded (source=input)
    run = await run_processor(WavRecorder(WavRecorder.Params(path=path)), [*frames, TextFrame("x")])
    assert len(run.of_type(InputAudioRawFrame)) == 10  # frames pass on
    assert_frames(run.of_type(OutputAudioRawFrame), [OutputAudioRawFrame])
    with wave.open(str(path), "rb") as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (16000, 1, 2)
        assert reader.readframes(reader.getnframes()) == chunk * 10


async def test_wav_recorder_converts_and_closes_on_cancel(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    recorder = WavRecorder(WavRecorder.Params(path=path, source="output", sample_rate=16000))
    task = PipelineTask(Pipeline([recorder]))
    runner = asyncio.ensure_future(task.run())
    await asyncio.sleep(0)
    await task.queue_frames([OutputAudioRawFrame(_tone_pcm(440, 48000, 0.1), 48000, 1) for _ in range(3)])
    await asyncio.sleep(0.05)
    await task.cancel()
    await asyncio.wait_for(runner, 2)
    with wave.open(str(path), "rb") as reader:
        assert reader.getframerate() == 16000
        assert reader.getnframes() == 3 * 1600


async def test_wav_player_resamples_to_pipeline_rate(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    mono = _tone_pcm(500, 8000, 0.5)
    stereo = np.repeat(np.frombuffer(mono, dtype="<i2"), 2).tobytes()
    _write_wav(path, stereo, 8000, channels=2)
    player = WavPlayer(WavPlayer.Params(path=path, realtime=False, end_when_done=True))
    run = await run_processor(player, send_end=False, start_frame=StartFrame(audio_out_sample_rate=24000))
    chunks = run.of_type(OutputAudioRawFrame)
    assert {(c.sample_rate, c.num_channels) for c in chunks} == {(24000, 1)}
    assert all(c.num_frames == 480 for c in chunks)
    pcm = b"".join(c.audio for c in chunks)
    assert len(pcm) == 2 * 12000
    assert abs(_peak_frequency(pcm, 24000) - 500) <= 4


async def test_wav_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "src.wav"
    copy = tmp_path / "copy.wav"
    _write_wav(source, _tone_pcm(700, 24000, 0.2), 24000)
    player = WavPlayer(WavPlayer.Params(path=source, realtime=False, end_when_done=True))
    recorder = WavRecorder(WavRecorder.Params(path=copy, source="output"))
    run = await run_processor(Pipeline([player, recorder]), send_end=False)
    assert run.error is None
    with wave.open(str(source), "rb") as a, wave.open(str(copy), "rb") as b:
        assert b.getframerate() == 24000
        assert a.readframes(a.getnframes()) == b.readframes(b.getnframes())


async def test_wav_player_waits_for_first_input(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    _write_wav(path, _tone_pcm(500, 24000, 0.1), 24000)
    player = WavPlayer(WavPlayer.Params(path=path, realtime=False, start_on="first_input", end_when_done=True))
    run = await run_processor(player, [TextFrame("no"), InputAudioRawFrame(b"\0\0" * 320, 16000)], send_end=False)
    assert isinstance(run.down[0], TextFrame)
    assert len(run.of_type(OutputAudioRawFrame)) == 5


async def test_wav_player_loops(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    _write_wav(path, _tone_pcm(500, 24000, 0.03), 24000)  # 1.5 chunks
    player = WavPlayer(WavPlayer.Params(path=path, loop=True, realtime=True))
    task = PipelineTask(Pipeline([player, _Sink()]))
    runner = asyncio.ensure_future(task.run())
    await asyncio.sleep(0.15)
    await task.end()
    await asyncio.wait_for(runner, 2)
    chunks = [f for f in _Sink.frames if isinstance(f, OutputAudioRawFrame)]
    assert len(chunks) >= 3
    assert all(c.num_frames == 480 for c in chunks)
    assert isinstance(_Sink.frames[-1], EndFrame)


async def test_wav_player_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    run = await run_processor(WavPlayer(WavPlayer.Params(path=path)), [])
    assert run.error is not None
    assert str(path) in run.error.error
    assert run.of_type(ErrorFrame, "up")


async def test_wav_player_bad_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(b"not a wav file at all")
    run = await run_processor(WavPlayer(WavPlayer.Params(path=path)), [])
    assert run.error is not None
    assert "cannot read WAV file" in run.error.error and str(path) in run.error.error


@pytest.mark.parametrize("width", [1, 3, 4])
async def test_wav_player_reads_other_sample_widths(tmp_path: Path, width: int) -> None:
    samples, _ = sine(600, 24000, 2400, amplitude=0.5)
    if width == 1:
        raw = np.clip(np.rint(samples * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    elif width == 3:
        ints = np.rint(samples * (1 << 23)).astype("<i4")
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    else:
        raw = np.rint(samples * (1 << 31)).astype("<i4").tobytes()
    path = tmp_path / f"w{width}.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(width)
        writer.setframerate(24000)
        writer.writeframes(raw)
    run = await run_processor(
        WavPlayer(WavPlayer.Params(path=path, realtime=False, end_when_done=True)), send_end=False
    )
    decoded = pcm16_to_float(b"".join(c.audio for c in run.of_type(OutputAudioRawFrame)))
    assert len(decoded) == 2400
    assert float(np.max(np.abs(decoded - samples))) < (0.01 if width == 1 else 1e-3)
