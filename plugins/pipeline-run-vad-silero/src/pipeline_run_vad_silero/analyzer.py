"""``SileroVAD`` (VAD ``silero``): voice confidence from the Silero neural VAD via onnxruntime."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from runner.audio.pcm import pcm16_to_float
from runner.audio.resample import StreamResampler
from runner.audio.vad import VADAnalyzer, VADParams

from pipeline_run_vad_silero.model import WINDOW, SileroModel


class SileroVADParams(VADParams):
    """Silero settings on top of the common thresholds."""

    reset_after_secs: float = Field(
        default=5.0,
        gt=0.0,
        le=600.0,
        description="Reset the model's recurrent state after this many seconds without speech.",
    )


class SileroVAD(VADAnalyzer):
    """Silero VAD on 32 ms windows (512 samples at 16 kHz, 256 at 8 kHz).

    Other input rates are accepted: the audio is resampled to 16 kHz (the core's streaming
    resampler, so its state carries from window to window) before it reaches the model.
    The model's state is carried from window to window and reset
    after ``reset_after_secs`` of silence so it cannot drift over long sessions.
    """

    Params: ClassVar[type[VADParams]] = SileroVADParams

    params: SileroVADParams

    def __init__(self, params: VADParams | None = None, *, sample_rate: int = 16000) -> None:
        if params is not None and not isinstance(params, SileroVADParams):
            params = SileroVADParams.model_validate(params.model_dump())
        self._model: SileroModel | None = None
        self._resampler: StreamResampler | None = None
        self._pending = b""  # resampled audio short of a model window
        self._confidence = 0.0
        self._quiet_samples = 0
        super().__init__(params, sample_rate=sample_rate)

    @property
    def model_rate(self) -> int:
        """The rate the model runs at for the current input rate."""
        return 8000 if self.sample_rate == 8000 else 16000

    def _configure(self) -> None:
        if self._model is None or self._model.sample_rate != self.model_rate:
            self._model = SileroModel(self.model_rate)
        self._resampler = None if self.sample_rate in WINDOW else StreamResampler(self.model_rate)
        self._pending = b""
        super()._configure()

    def reset(self) -> None:
        """Forget buffered audio, the state machine and the model's state."""
        super().reset()
        if self._model is not None:
            self._model.reset()
        if self._resampler is not None:
            self._resampler.reset()
        self._pending = b""
        self._quiet_samples = 0

    def num_frames_required(self) -> int:
        """32 ms of input: 512 samples at 16 kHz, 256 at 8 kHz, proportionally otherwise."""
        if self.sample_rate in WINDOW:
            return WINDOW[self.sample_rate]
        return max(1, round(self.sample_rate * WINDOW[16000] / 16000))

    def voice_confidence(self, pcm: bytes) -> float:
        """The model's speech probability for one window (the latest full one, when resampling)."""
        model = self._model
        assert model is not None
        if self._resampler is None:
            return self._run(model, pcm)
        self._pending += self._resampler.push_pcm(pcm, self.sample_rate, 1)
        size = model.window * 2
        while len(self._pending) >= size:
            window, self._pending = self._pending[:size], self._pending[size:]
            self._confidence = self._run(model, window)
        return self._confidence

    def _run(self, model: SileroModel, pcm: bytes) -> float:
        confidence = model(pcm16_to_float(pcm))
        if confidence >= self.params.confidence:
            self._quiet_samples = 0
        else:
            self._quiet_samples += model.window
            if self._quiet_samples >= self.params.reset_after_secs * model.sample_rate:
                model.reset()
                self._quiet_samples = 0
        return confidence


__all__ = ["SileroVAD", "SileroVADParams"]
