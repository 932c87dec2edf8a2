"""``EnergyVAD``: a dependency-light voice detector based on loudness above the noise floor.

It cannot tell a voice from a door slam, but it needs nothing beyond numpy, starts
instantly and is deterministic, which makes it the default for tests and demos.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from runner.audio.pcm import SILENCE_DBFS, dbfs, pcm16_to_float
from runner.audio.vad import VADAnalyzer, VADParams


class EnergyVADParams(VADParams):
    """Energy VAD settings on top of the common thresholds."""

    noise_floor_db: float = Field(default=-55.0, ge=-100.0, le=0.0, description="Lowest noise floor assumed, in dBFS.")
    range_db: float = Field(
        default=20.0, gt=0.0, le=60.0, description="dB above the noise floor at which confidence reaches 1."
    )
    adaptive: bool = Field(
        default=True, description="Track the background noise: the floor follows quiet windows and rises slowly."
    )
    smoothing: float = Field(
        default=0.4, gt=0.0, le=1.0, description="Weight of a new window in the smoothed level (1 = none)."
    )


class EnergyVAD(VADAnalyzer):
    """Confidence from the smoothed RMS level of 20 ms windows above an (adaptive) noise floor."""

    Params: ClassVar[type[VADParams]] = EnergyVADParams
    #: how fast the tracked noise floor may rise, in dB per second.
    floor_rise_db_per_sec: ClassVar[float] = 1.0

    params: EnergyVADParams

    def __init__(self, params: VADParams | None = None, *, sample_rate: int = 16000) -> None:
        if params is not None and not isinstance(params, EnergyVADParams):
            params = EnergyVADParams.model_validate(params.model_dump())
        super().__init__(params, sample_rate=sample_rate)

    def reset(self) -> None:
        """Forget buffered audio, the smoothed level and the tracked noise floor."""
        super().reset()
        self._level_db = SILENCE_DBFS
        self._noise_db = self.params.noise_floor_db

    @property
    def level_db(self) -> float:
        """The smoothed level of recent windows, in dBFS."""
        return self._level_db

    @property
    def noise_floor_db(self) -> float:
        """The noise floor confidence is measured against, in dBFS."""
        return max(self.params.noise_floor_db, self._noise_db)

    def voice_confidence(self, pcm: bytes) -> float:
        """Confidence 0..1: how far the smoothed level is above the noise floor."""
        window_db = dbfs(pcm16_to_float(pcm))
        self._level_db += self.params.smoothing * (window_db - self._level_db)
        if self.params.adaptive:
            self._track_noise(window_db, len(pcm) // 2)
        above = self._level_db - self.noise_floor_db
        return min(1.0, max(0.0, above / self.params.range_db))

    def _track_noise(self, window_db: float, num_samples: int) -> None:
        if window_db < self._noise_db:
            self._noise_db = max(window_db, self.params.noise_floor_db)
        else:
            self._noise_db += self.floor_rise_db_per_sec * num_samples / self.sample_rate


__all__ = ["EnergyVAD", "EnergyVADParams"]
