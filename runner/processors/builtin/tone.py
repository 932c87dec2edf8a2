"""``ToneSource`` (``audio.tone``): a sine generator, handy for testing audio paths end to end."""

from __future__ import annotations

from pydantic import Field

from runner.audio.pcm import float_to_pcm16, sine
from runner.frames import StartFrame
from runner.processors.base import ProcessorParams
from runner.processors.builtin._source import AudioSource


class ToneSource(AudioSource):
    """Pushes a continuous sine as ``OutputAudioRawFrame`` chunks from its own task.

    Starts once the ``StartFrame`` has passed; stops at the end of ``duration_secs``, on
    ``EndFrame``, cancellation or cleanup. The phase carries over between chunks, so
    there are no clicks at chunk boundaries.
    """

    class Params(ProcessorParams):
        """Tone generator settings."""

        frequency: float = Field(default=440.0, gt=0.0, le=20000.0, description="Tone frequency in Hz.")
        amplitude: float = Field(default=0.3, ge=0.0, le=1.0, description="Peak amplitude, 1 = full scale.")
        duration_secs: float | None = Field(
            default=None, gt=0.0, description="How long to play; null = until the pipeline ends."
        )
        sample_rate: int | None = Field(
            default=None, ge=8000, le=48000, description="Output rate; null = the pipeline's output rate."
        )
        chunk_ms: int = Field(default=20, ge=5, le=200, description="Length of each pushed audio frame.")
        realtime: bool = Field(default=True, description="Pace chunks in real time; false = as fast as possible.")
        end_when_done: bool = Field(
            default=False, description="Ask the pipeline to end once duration_secs has been played."
        )

    params: Params

    def __init__(self, params: Params | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params if params is not None else self.Params()
        self._phase = 0.0
        self._remaining: int | None = None

    async def start(self, frame: StartFrame) -> None:
        p = self.params
        self.source_sample_rate = p.sample_rate or frame.audio_out_sample_rate
        self.chunk_samples = max(1, self.source_sample_rate * p.chunk_ms // 1000)
        self.realtime = p.realtime
        self.end_when_done = p.end_when_done
        self._phase = 0.0
        self._remaining = None if p.duration_secs is None else round(p.duration_secs * self.source_sample_rate)

    def next_chunk(self) -> bytes | None:
        """The next ``chunk_ms`` of the sine (shorter at the very end), or None when done."""
        count = self.chunk_samples
        if self._remaining is not None:
            if self._remaining <= 0:
                return None
            count = min(count, self._remaining)
            self._remaining -= count
        samples, self._phase = sine(
            self.params.frequency,
            self.source_sample_rate,
            count,
            amplitude=self.params.amplitude,
            phase=self._phase,
        )
        return float_to_pcm16(samples)
