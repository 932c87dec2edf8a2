"""Silero VAD: speech from eSpeak is detected, silence and noise stay quiet, state handling."""

from __future__ import annotations

import time

import numpy as np
import pytest
from runner.audio.resample import AudioNormalizer
from runner.audio.vad import VADParams, VADState

from pipeline_run_vad_silero import SileroVAD, SileroVADParams
from pipeline_run_vad_silero.model import SileroModel

espeak = pytest.importorskip("pipeline_run_tts_espeak._espeak")


def speech(rate: int = 16000, text: str = "Hello there, this is a test of the voice detector.") -> bytes:
    engine = espeak.EspeakEngine.shared()
    pcm = engine.synthesize(text, espeak.Voice())
    normalizer = AudioNormalizer(rate, 1, chunk_ms=None)
    return b"".join(normalizer.push_pcm(pcm, engine.sample_rate, 1) + normalizer.flush())


def feed(vad: SileroVAD, pcm: bytes, chunk: int = 640) -> list[VADState]:
    return [vad.analyze_audio(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]


def test_speech_is_detected_and_silence_after_it_stops() -> None:
    vad = SileroVAD(SileroVADParams(confidence=0.5, min_volume=0.3), sample_rate=16000)
    states = feed(vad, bytes(16000) + speech() + bytes(2 * 16000 * 2))
    assert VADState.SPEAKING in states
    assert states[-1] is VADState.QUIET


def test_silence_and_white_noise_stay_quiet() -> None:
    vad = SileroVAD(sample_rate=16000)
    assert VADState.SPEAKING not in feed(vad, bytes(3 * 16000 * 2))
    noise = (np.random.default_rng(1).normal(0, 0.02, 3 * 16000) * 32767).astype("<i2").tobytes()
    assert VADState.SPEAKING not in feed(vad, noise)


@pytest.mark.parametrize("rate", [8000, 24000, 44100, 48000])
def test_other_sample_rates(rate: int) -> None:
    vad = SileroVAD(SileroVADParams(confidence=0.5, min_volume=0.3), sample_rate=rate)
    assert vad.num_frames_required() == round(rate * 32 / 1000)
    assert VADState.SPEAKING in feed(vad, speech(rate), chunk=rate // 25)


def test_common_params_are_accepted_and_threshold_alias_works() -> None:
    vad = SileroVAD(VADParams(confidence=0.4))
    assert isinstance(vad.params, SileroVADParams) and vad.params.confidence == 0.4
    assert SileroVADParams.model_validate({"threshold": 0.5}).confidence == 0.5


def test_state_is_carried_and_reset_after_long_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    vad = SileroVAD(SileroVADParams(reset_after_secs=0.5), sample_rate=16000)
    model = vad._model
    assert model is not None
    feed(vad, speech()[: 16000 * 2])
    assert np.any(model._state != 0)
    resets: list[int] = []
    monkeypatch.setattr(model, "reset", lambda: resets.append(1))
    feed(vad, bytes(16000 * 2))  # one second of silence: one reset after 0.5 s
    assert len(resets) in (1, 2)


def test_default_params_detect_speech() -> None:
    assert VADState.SPEAKING in feed(SileroVAD(), speech())


def test_unsupported_model_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="8000 or 16000"):
        SileroModel(44100)


def test_per_window_cost(capsys: pytest.CaptureFixture[str]) -> None:
    model = SileroModel(16000)
    window = np.zeros(512, dtype=np.float32)
    for _ in range(20):
        model(window)
    runs = 300
    started = time.perf_counter()
    for _ in range(runs):
        model(window)
    per_window = (time.perf_counter() - started) / runs
    with capsys.disabled():
        print(f"\n[silero] {per_window * 1e3:.3f} ms per 32 ms window ({per_window / 0.032:.1%} of real time)")
    assert per_window < 0.032
