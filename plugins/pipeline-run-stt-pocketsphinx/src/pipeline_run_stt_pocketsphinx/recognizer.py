"""A thread-safe, synchronous wrapper around one pocketsphinx ``Decoder``.

Every method takes a lock, so calls made from ``asyncio.to_thread`` never overlap even
when the caller's task is cancelled mid-call. Finished transcripts collect in an outbox
(:meth:`Recognizer.take_results`) so none is lost to such a cancellation.

Cepstral mean normalisation (CMN): the en-us model was trained with per-utterance ("batch")
CMN. Streaming decoding can only use a running ("live") mean, which starts at the generic
``cmninit`` in every new decoder and is updated only at the end of each utterance, weighted
against 500 frames of that prior. The first utterance of a session is therefore decoded
against a mean far from the speaker's (eSpeak over Opus: c0..c4 near 50,10,-10,18,-35
against the prior's 40,3,-1,0,0), and a short word like "hello" comes out as "turn on".
With VAD boundaries (``cmn="utterance"``) the utterance is buffered and decoded whole at
the VAD stop with ``full_utt=True``, so pocketsphinx normalises it by its own mean: no cold
start, no drift between utterances, and the decode (~90x real time with a phrase grammar)
costs about what streaming's would have, only later.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import deque
from typing import Any

from runner.audio.resample import AudioNormalizer

from pipeline_run_stt_pocketsphinx.grammar import jsgf_text, keyphrase_lines, phrases_to_jsgf, words_of
from pipeline_run_stt_pocketsphinx.params import PocketsphinxParams

SAMPLE_RATE = 16000
BYTES_PER_SEC = SAMPLE_RATE * 2


def build_decoder(params: PocketsphinxParams) -> Any:
    """A configured ``pocketsphinx.Decoder`` with the search of ``params`` active."""
    import pocketsphinx

    config = pocketsphinx.Config(loglevel="FATAL")
    # +-1 LSB of dither: digital silence (exact zeros, e.g. around synthetic or file speech)
    # otherwise has no energy and skews the utterance's cepstral mean; a fixed seed keeps
    # transcripts reproducible
    config["dither"] = True
    config["seed"] = 1
    if params.acoustic_model:
        config["hmm"] = params.acoustic_model
    if params.dictionary:
        config["dict"] = params.dictionary
    if params.search == "lm":
        if params.language_model:
            config["lm"] = params.language_model
    else:
        config["lm"] = None
    try:
        decoder = pocketsphinx.Decoder(config)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"pocketsphinx could not load its models: {exc}") from exc
    if params.search != "lm":
        _add_search(decoder, params)
    return decoder


def _check_words(decoder: Any, texts: list[str]) -> None:
    missing = sorted(w for text in texts for w in words_of(text) if decoder.lookup_word(w) is None)
    if missing:
        raise ValueError(f"words not in the pronunciation dictionary: {', '.join(missing)}")


def _add_search(decoder: Any, params: PocketsphinxParams) -> None:
    name = params.search
    try:
        if params.phrases is not None:
            _check_words(decoder, params.phrases)
            decoder.add_jsgf_string(name, phrases_to_jsgf(params.phrases))
        elif params.grammar is not None:
            decoder.add_jsgf_string(name, jsgf_text(params.grammar))
        elif params.keyphrases is not None:
            _check_words(decoder, params.keyphrases)
            handle, path = tempfile.mkstemp(suffix=".kws", text=True)
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    file.write(keyphrase_lines(params.keyphrases, params.keyphrase_threshold))
                decoder.add_kws(name, path)
            finally:
                os.unlink(path)
    except RuntimeError as exc:
        raise ValueError(f"pocketsphinx rejected the {name}: {exc}") from exc
    decoder.activate_search(name)


class Recognizer:
    """Streams 16 kHz audio into the decoder between utterance boundaries."""

    def __init__(self, params: PocketsphinxParams) -> None:
        self.params = params
        self._lock = threading.Lock()
        self._decoder: Any = None
        self._normalizer = AudioNormalizer(SAMPLE_RATE, 1, chunk_ms=None)
        self._preroll = bytearray()
        self._preroll_max = int(params.preroll_secs * SAMPLE_RATE) * 2
        self._in_utterance = False
        self._utterance_bytes = 0
        self._builtin = params.endpointing != "vad"
        self._endpointer: Any = None
        self._pending = bytearray()
        self._results: deque[str] = deque()
        self._whole = bytearray()  # the open utterance's audio while it is decoded whole
        self._decode_whole = False  # how the open utterance is decoded

    @property
    def loaded(self) -> bool:
        return self._decoder is not None

    @property
    def uses_vad(self) -> bool:
        """True once utterances are delimited by VAD notices."""
        return not self._builtin

    def load(self) -> None:
        """Load the models (slow: do it off the event loop)."""
        with self._lock:
            if self._decoder is None:
                self._decoder = build_decoder(self.params)
            if self._builtin and self._endpointer is None:
                import pocketsphinx

                self._endpointer = pocketsphinx.Endpointer(sample_rate=SAMPLE_RATE)

    def use_vad(self) -> None:
        """Switch to VAD boundaries for good (drops an utterance the endpointer had begun)."""
        with self._lock:
            if not self._builtin:
                return
            self._builtin = False
            self._pending.clear()
            if self._in_utterance:
                self._decoder.end_utt()  # begun by the endpointer: always a streaming utterance
                self._in_utterance = False

    def feed(self, pcm: bytes, sample_rate: int, num_channels: int = 1) -> None:
        """Take a chunk of s16 audio at any rate/layout."""
        with self._lock:
            for audio in self._normalizer.push_pcm(pcm, sample_rate, num_channels):
                if self._builtin:
                    self._feed_endpointer(audio)
                elif self._in_utterance:
                    self._process(audio)
                else:
                    self._keep_preroll(audio)

    def begin(self) -> None:
        """The user started speaking: open an utterance with the pre-roll audio."""
        with self._lock:
            if self._builtin or self._in_utterance:
                return
            self._start_utterance()
            if self._preroll:
                self._process(bytes(self._preroll))
                self._preroll.clear()

    def finish(self) -> None:
        """The user stopped speaking: close the utterance and queue its transcript."""
        with self._lock:
            if not self._builtin and self._in_utterance:
                self._end_utterance()

    def flush(self) -> None:
        """End of stream: close any open utterance and queue its transcript."""
        with self._lock:
            if self._builtin and self._endpointer is not None and self._pending:
                speech = self._endpointer.end_stream(bytes(self._pending))
                self._pending.clear()
                if speech is not None and self._in_utterance:
                    self._process(speech)
            if self._in_utterance:
                self._end_utterance()

    def take_results(self) -> list[str]:
        """Transcripts finished since the last call (never blocks)."""
        results: list[str] = []
        while self._results:
            results.append(self._results.popleft())
        return results

    # ------------------------------------------------------------ internals (lock held)

    def _start_utterance(self) -> None:
        # the built-in endpointer streams (it has no later point to decode at); VAD utterances
        # are decoded whole unless live CMN was asked for
        self._decode_whole = not self._builtin and self.params.cmn == "utterance"
        self._whole.clear()
        if not self._decode_whole:
            self._decoder.start_utt()
        self._in_utterance = True
        self._utterance_bytes = 0

    def _end_utterance(self) -> None:
        if self._decode_whole:
            self._decoder.start_utt()
            if self._whole:
                # full_utt: the utterance is normalised by its own cepstral mean
                self._decoder.process_raw(bytes(self._whole), False, True)
            self._whole.clear()
        self._decoder.end_utt()
        self._in_utterance = False
        hyp = self._decoder.hyp()
        text = " ".join(hyp.hypstr.split()) if hyp is not None else ""
        if text:
            self._results.append(text)

    def _process(self, audio: bytes) -> None:
        if self._decode_whole:
            self._whole += audio
        else:
            self._decoder.process_raw(audio, False, False)
        self._utterance_bytes += len(audio)
        if self._utterance_bytes >= self.params.max_utterance_secs * BYTES_PER_SEC:
            self._end_utterance()
            self._start_utterance()

    def _keep_preroll(self, audio: bytes) -> None:
        self._preroll += audio
        excess = len(self._preroll) - self._preroll_max
        if excess > 0:
            del self._preroll[:excess]

    def _feed_endpointer(self, audio: bytes) -> None:
        endpointer = self._endpointer
        self._pending += audio
        size = endpointer.frame_bytes
        while len(self._pending) >= size:
            frame = bytes(self._pending[:size])
            del self._pending[:size]
            was_speaking = endpointer.in_speech
            speech = endpointer.process(frame)
            if speech is None:
                continue
            if not was_speaking and not self._in_utterance:
                self._start_utterance()
            self._process(speech)
            if not endpointer.in_speech and self._in_utterance:
                self._end_utterance()


__all__ = ["SAMPLE_RATE", "Recognizer", "build_decoder"]
