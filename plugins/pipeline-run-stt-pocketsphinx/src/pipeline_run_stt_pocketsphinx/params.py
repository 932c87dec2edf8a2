"""``stt.pocketsphinx`` parameters."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from runner.processors.base import ProcessorParams


class PocketsphinxParams(ProcessorParams):
    """What to recognise and how utterances are delimited."""

    phrases: list[str] | None = Field(
        default=None,
        description="Plain list of allowed sentences, compiled into a JSGF grammar (most reliable mode).",
    )
    grammar: str | None = Field(default=None, description="A JSGF grammar: the text itself or a path to a .gram file.")
    keyphrases: list[str] | None = Field(default=None, description="Phrases to spot anywhere in the speech.")
    keyphrase_threshold: float = Field(
        default=1e-20, gt=0.0, le=1.0, description="Detection threshold for keyphrases (smaller = more hits)."
    )
    language_model: str | None = Field(
        default=None, description="Path to an n-gram language model; default: en-us.lm.bin from the pocketsphinx wheel."
    )
    acoustic_model: str | None = Field(
        default=None, description="Acoustic model directory; default: the wheel's en-us."
    )
    dictionary: str | None = Field(
        default=None, description="Pronunciation dictionary; default: cmudict-en-us.dict from the wheel."
    )
    endpointing: Literal["auto", "vad", "pocketsphinx"] = Field(
        default="auto",
        description=(
            "Utterance boundaries: 'vad' = User{Started,Stopped}SpeakingFrame, 'pocketsphinx' = its own "
            "endpointer, 'auto' = its own until the first UserStartedSpeakingFrame arrives."
        ),
    )
    preroll_secs: float = Field(
        default=0.6, ge=0.0, le=3.0, description="Audio kept from before the VAD's start notice and decoded with it."
    )
    cmn: Literal["utterance", "live"] = Field(
        default="utterance",
        description=(
            "Cepstral mean normalisation of VAD utterances: 'utterance' = decode each one whole at the VAD "
            "stop, normalised by its own mean (as the model was trained: right from the first utterance); "
            "'live' = decode while the user speaks, with a running mean that starts cold in each session."
        ),
    )
    max_utterance_secs: float = Field(
        default=30.0, gt=0.0, le=600.0, description="An utterance longer than this is finalised anyway."
    )
    audio_passthrough: bool = Field(default=False, description="Also pass InputAudioRawFrame on downstream.")

    @model_validator(mode="after")
    def _one_search(self) -> PocketsphinxParams:
        chosen = [n for n in ("phrases", "grammar", "keyphrases") if getattr(self, n) is not None]
        if len(chosen) > 1:
            raise ValueError(f"choose one of phrases, grammar and keyphrases (got {', '.join(chosen)})")
        if chosen and self.language_model is not None:
            raise ValueError(f"language_model cannot be combined with {chosen[0]}")
        return self

    @property
    def search(self) -> Literal["lm", "phrases", "grammar", "keyphrases"]:
        """Which search the decoder runs."""
        for name in ("phrases", "grammar", "keyphrases"):
            if getattr(self, name) is not None:
                return name
        return "lm"


__all__ = ["PocketsphinxParams"]
