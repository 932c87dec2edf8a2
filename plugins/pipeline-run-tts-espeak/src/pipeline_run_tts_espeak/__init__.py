"""eSpeak NG text-to-speech for pipeline-run (entry point ``tts.espeak``)."""

from pipeline_run_tts_espeak.tts import EspeakTTS

__all__ = ["EspeakTTS"]
