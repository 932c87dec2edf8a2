"""Voice activity detection: the analyzer contract (entry-point group ``pipeline_run.vad``).

CONTRACT (helper fills in the implementation):
    class VADParams(BaseModel): confidence/threshold, start_secs, stop_secs, min_volume; extra=forbid
    class VADState(Enum): QUIET, STARTING, SPEAKING, STOPPING
    class VADAnalyzer:
        Params: ClassVar[type[VADParams]] = VADParams
        def __init__(self, params: VADParams | None = None, *, sample_rate: int = 16000)
        def set_sample_rate(self, rate: int) -> None
        def voice_confidence(self, pcm: bytes) -> float   # abstract, 16-bit mono PCM
        def analyze_audio(self, pcm: bytes) -> VADState   # buffers, runs the state machine
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class VADParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VADAnalyzer:
    Params: ClassVar[type[VADParams]] = VADParams

    def __init__(self, params: VADParams | None = None, *, sample_rate: int = 16000) -> None:
        self.params = params if params is not None else self.Params()
        self.sample_rate = sample_rate
