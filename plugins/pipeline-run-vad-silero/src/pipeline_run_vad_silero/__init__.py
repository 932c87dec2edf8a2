"""Silero voice activity detection for pipeline-run (VAD entry point ``silero``)."""

from pipeline_run_vad_silero.analyzer import SileroVAD, SileroVADParams

__all__ = ["SileroVAD", "SileroVADParams"]
