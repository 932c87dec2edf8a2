"""VAD contract and the energy analyzer."""

from __future__ import annotations

import pytest

from runner.audio.energy_vad import EnergyVAD, EnergyVADParams
from runner.audio.pcm import float_to_pcm16, sine
from runner.audio.vad import VADAnalyzer, VADParams, VADState

RATE = 16000


def tone(secs: float, amplitude: float = 0.5, rate: int = RATE) -> bytes:
    samples, _ = sine(220, rate, int(rate * secs), amplitude=amplitude)
    return float_to_pcm16(samples)


def silence(secs: float, rate: int = RATE) -> bytes:
    return b"\0\0" * int(rate * secs)


def feed(vad: VADAnalyzer, pcm: bytes, chunk_secs: float = 0.01) -> list[VADState]:
    """States after each chunk (chunks deliberately not aligned to the 20 ms window)."""
    size = 2 * int(vad.sample_rate * chunk_secs)
    return [vad.analyze_audio(pcm[i : i + size]) for i in range(0, len(pcm), size)]


def first_index(states: list[VADState], wanted: VADState) -> int:
    return next(i for i, s in enumerate(states) if s is wanted)


def test_params_defaults_and_alias() -> None:
    p = VADParams()
    assert (p.confidence, p.start_secs, p.stop_secs, p.min_volume) == (0.7, 0.2, 0.8, 0.6)
    assert VADParams.model_validate({"threshold": 0.5}).confidence == 0.5
    with pytest.raises(ValueError):
        VADParams.model_validate({"confidence": 2})
    with pytest.raises(ValueError):
        VADParams.model_validate({"nope": 1})


def test_silence_is_quiet() -> None:
    vad = EnergyVAD()
    assert set(feed(vad, silence(1.0))) == {VADState.QUIET}


def test_tone_burst_starts_and_stops() -> None:
    vad = EnergyVAD(VADParams(start_secs=0.2, stop_secs=0.8))
    states = feed(vad, silence(0.3) + tone(1.0) + silence(1.2), chunk_secs=0.01)
    # index i means 10 ms * (i + 1) of audio fed
    speaking_at = (first_index(states, VADState.SPEAKING) + 1) * 0.01
    assert 0.3 + 0.2 <= speaking_at <= 0.3 + 0.2 + 0.1  # after start_secs of tone, plus smoothing
    assert VADState.STARTING in states[: first_index(states, VADState.SPEAKING)]
    quiet_again = next(i for i, s in enumerate(states) if (i + 1) * 0.01 > 1.3 and s is VADState.QUIET)
    quiet_at = (quiet_again + 1) * 0.01
    assert 1.3 + 0.8 <= quiet_at <= 1.3 + 0.8 + 0.1
    assert VADState.STOPPING in states[first_index(states, VADState.SPEAKING) : quiet_again]
    assert states[-1] is VADState.QUIET


def test_short_blip_does_not_start() -> None:
    vad = EnergyVAD()
    states = feed(vad, silence(0.2) + tone(0.1) + silence(0.5))
    assert VADState.SPEAKING not in states
    assert states[-1] is VADState.QUIET


def test_short_pause_does_not_stop() -> None:
    vad = EnergyVAD(VADParams(stop_secs=0.5))
    states = feed(vad, tone(0.5) + silence(0.2) + tone(0.3))
    after_start = states[first_index(states, VADState.SPEAKING) :]
    assert VADState.QUIET not in after_start
    assert after_start[-1] is VADState.SPEAKING


def test_quiet_tone_is_gated_by_min_volume() -> None:
    # -50 dBFS-ish: well above the noise floor of digital silence but below min_volume
    vad = EnergyVAD(EnergyVADParams(noise_floor_db=-90, range_db=10))
    assert VADState.SPEAKING not in feed(vad, tone(1.0, amplitude=0.004))
    vad = EnergyVAD(EnergyVADParams(noise_floor_db=-90, range_db=10, min_volume=0.0))
    assert VADState.SPEAKING in feed(vad, tone(1.0, amplitude=0.004))


def test_sample_rate_change_and_window() -> None:
    vad = EnergyVAD(sample_rate=8000)
    assert vad.num_frames_required() == 160
    vad.set_sample_rate(48000)
    assert vad.num_frames_required() == 960
    assert VADState.SPEAKING in feed(vad, tone(0.5, rate=48000))
    vad.set_sample_rate(16000)
    assert vad.state is VADState.QUIET


def test_generic_params_are_upgraded() -> None:
    vad = EnergyVAD(VADParams(confidence=0.4))
    assert isinstance(vad.params, EnergyVADParams)
    assert vad.params.confidence == 0.4


def test_custom_analyzer_uses_base_machinery() -> None:
    class Always(VADAnalyzer):
        def num_frames_required(self) -> int:
            return 512

        def voice_confidence(self, pcm: bytes) -> float:
            assert len(pcm) == 1024
            return 1.0

    vad = Always(VADParams(start_secs=0.0, min_volume=0.0))
    assert vad.analyze_audio(silence(0.01)) is VADState.QUIET  # less than one window
    assert vad.analyze_audio(silence(0.03)) is VADState.SPEAKING
