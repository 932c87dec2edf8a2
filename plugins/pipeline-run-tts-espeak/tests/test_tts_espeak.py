"""eSpeak NG TTS: audio of plausible length, sentence streaming, markers, interruption."""

from __future__ import annotations

import time

import pytest
from runner.frames import (
    FlushFrame,
    InterruptionFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    OutputAudioRawFrame,
    StartFrame,
    TextFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from runner.testing import run_processor
from runner.text import split_sentences

from pipeline_run_tts_espeak import EspeakTTS
from pipeline_run_tts_espeak._espeak import EspeakEngine, Voice


def _audio_secs(frames: list[OutputAudioRawFrame]) -> float:
    return sum(frame.duration for frame in frames)


async def test_speak_frame_becomes_20ms_chunks_of_plausible_duration() -> None:
    run = await run_processor(EspeakTTS(), [TTSSpeakFrame("Hello world, this is a test.")])
    assert run.error is None
    audio = run.of_type(OutputAudioRawFrame)
    assert audio and all(f.sample_rate == 24000 and f.num_frames == 480 for f in audio)
    assert 1.0 < _audio_secs(audio) < 3.5
    kinds = [type(f) for f in run.down]
    assert kinds[0] is TTSStartedFrame and kinds[-1] is TTSStoppedFrame
    assert run.of_type(TextFrame)[0].text == "Hello world, this is a test."


async def test_resamples_to_the_pipeline_output_rate() -> None:
    run = await run_processor(
        EspeakTTS(), [TTSSpeakFrame("Testing the rate.")], start_frame=StartFrame(audio_out_sample_rate=16000)
    )
    audio = run.of_type(OutputAudioRawFrame)
    assert audio and {f.sample_rate for f in audio} == {16000} and audio[0].num_frames == 320


async def test_text_chunks_are_spoken_sentence_by_sentence() -> None:
    chunks = ["Hello the", "re. How are", " you? I am", " fine"]
    run = await run_processor(EspeakTTS(), [TextFrame(c) for c in chunks] + [FlushFrame()])
    assert [f.text for f in run.of_type(TextFrame)] == ["Hello there.", "How are you?", "I am fine"]
    assert len(run.of_type(TTSStartedFrame)) == 3 and len(run.of_type(TTSStoppedFrame)) == 3
    assert isinstance(run.down[-1], FlushFrame)


async def test_llm_response_end_speaks_the_rest_before_passing_on() -> None:
    frames = [LLMResponseStartFrame(), TextFrame("No full stop here"), LLMResponseEndFrame()]
    run = await run_processor(EspeakTTS(), frames)
    assert isinstance(run.down[0], LLMResponseStartFrame) and isinstance(run.down[-1], LLMResponseEndFrame)
    assert [f.text for f in run.of_type(TextFrame)] == ["No full stop here"]
    assert run.of_type(OutputAudioRawFrame)


async def test_other_frames_pass_through() -> None:
    frame = TranscriptionFrame("user said")
    run = await run_processor(EspeakTTS(), [frame])
    assert run.down == [frame]


async def test_interruption_drops_pending_sentences() -> None:
    text = "This is a fairly long sentence that takes a while to say out loud."
    full = await run_processor(EspeakTTS(), [TTSSpeakFrame(text)])
    one = _audio_secs(full.of_type(OutputAudioRawFrame))
    run = await run_processor(EspeakTTS(), [*(TTSSpeakFrame(text) for _ in range(6)), InterruptionFrame()])
    assert run.error is None
    assert _audio_secs(run.of_type(OutputAudioRawFrame)) < 6 * one


async def test_unknown_voice_is_a_clear_error() -> None:
    run = await run_processor(EspeakTTS(EspeakTTS.Params(voice="xx-nonexistent")), [TTSSpeakFrame("hi")])
    assert run.error is not None and "xx-nonexistent" in run.error.error


@pytest.mark.parametrize(
    ("buffer", "sentences", "rest"),
    [
        ("Hi there. How", ["Hi there."], "How"),
        ("One! Two? Three.", ["One!", "Two?", "Three."], ""),
        ("Pi is 3.", [], "Pi is 3."),
        ("Line one\nLine two", ["Line one"], "Line two"),
        ('He said "stop." Then', ['He said "stop."'], "Then"),
    ],
)
def test_split_sentences(buffer: str, sentences: list[str], rest: str) -> None:
    assert split_sentences(buffer) == (sentences, rest)


async def test_time_to_first_audio_is_small(capsys: pytest.CaptureFixture[str]) -> None:
    EspeakEngine.shared().synthesize("warm up", Voice())
    tts = EspeakTTS()
    await run_processor(tts, [TTSSpeakFrame("The quick brown fox jumps over the lazy dog.")])
    assert tts.last_time_to_first_audio is not None
    started = time.perf_counter()
    pcm = EspeakEngine.shared().synthesize("The quick brown fox jumps over the lazy dog.", Voice())
    synth = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\n[espeak] time to first audio {tts.last_time_to_first_audio * 1000:.1f} ms;"
            f" raw synth {synth * 1000:.1f} ms for {len(pcm) / 2 / 22050:.2f} s of speech"
        )
    assert tts.last_time_to_first_audio < 0.5
