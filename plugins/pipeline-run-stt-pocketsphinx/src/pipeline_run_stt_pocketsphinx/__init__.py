"""Offline pocketsphinx speech recognition for pipeline-run (entry point ``stt.pocketsphinx``)."""

from pipeline_run_stt_pocketsphinx.params import PocketsphinxParams
from pipeline_run_stt_pocketsphinx.recognizer import Recognizer
from pipeline_run_stt_pocketsphinx.stt import PocketsphinxSTT

__all__ = ["PocketsphinxParams", "PocketsphinxSTT", "Recognizer"]
