"""A small ctypes binding to the libespeak-ng that ``espeakng-loader`` bundles.

libespeak-ng keeps global state (one voice, one callback, one set of parameters), so
every call goes through :class:`EspeakEngine`, a process-wide singleton guarded by a
lock. Synthesis runs in synchronous mode: ``espeak_Synth`` returns once the whole text
has been handed to our callback as 22050 Hz 16-bit mono PCM.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
POS_CHARACTER = 1
CHARS_UTF8 = 1
EE_OK = 0

# espeak_PARAMETER
RATE = 1
VOLUME = 2
PITCH = 3

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """libespeak-ng could not be loaded or refused a call."""


@dataclass(frozen=True, slots=True)
class Voice:
    """What to speak with: a voice name and its prosody settings."""

    name: str = "en-us"
    rate: int = 175
    pitch: int = 50
    volume: int = 100


class EspeakEngine:
    """The process-wide eSpeak NG library: load once, synthesize one text at a time."""

    _instance: EspeakEngine | None = None
    _instance_lock = threading.Lock()

    def __init__(self, library_path: str, data_path: str) -> None:
        try:
            self._lib = ctypes.CDLL(library_path)
        except OSError as exc:
            raise EspeakError(f"cannot load libespeak-ng from {library_path}: {exc}") from exc
        self._declare()
        self.lock = threading.Lock()
        rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (data path {data_path})")
        self.sample_rate: int = rate
        self._chunks: list[bytes] = []
        self._abort: Callable[[], bool] = lambda: False
        # Keep a reference: ctypes must not free the trampoline while C holds it.
        self._callback = _SynthCallback(self._on_audio)
        self._lib.espeak_SetSynthCallback(self._callback)
        self._voice: Voice | None = None

    @classmethod
    def shared(cls) -> EspeakEngine:
        """The one engine of this process, loaded from ``espeakng-loader`` on first use."""
        with cls._instance_lock:
            if cls._instance is None:
                import espeakng_loader

                cls._instance = cls(espeakng_loader.get_library_path(), espeakng_loader.get_data_path())
            return cls._instance

    def _declare(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int

    def _on_audio(self, wav: ctypes._Pointer[ctypes.c_short], num_samples: int, events: int | None) -> int:
        if wav and num_samples > 0:
            self._chunks.append(ctypes.string_at(wav, num_samples * 2))
        return 1 if self._abort() else 0

    def _apply(self, voice: Voice) -> None:
        if voice == self._voice:
            return
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != EE_OK:
            self._voice = None
            raise EspeakError(f"unknown eSpeak voice {voice.name!r}")
        for parameter, value in ((RATE, voice.rate), (PITCH, voice.pitch), (VOLUME, voice.volume)):
            self._lib.espeak_SetParameter(parameter, value, 0)
        self._voice = voice

    def synthesize(self, text: str, voice: Voice, abort: Callable[[], bool] | None = None) -> bytes:
        """Speak ``text``; return 16-bit mono PCM at :attr:`sample_rate` (blocking)."""
        data = text.encode("utf-8") + b"\0"
        with self.lock:
            self._apply(voice)
            self._chunks = []
            self._abort = abort or (lambda: False)
            try:
                result = self._lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
            finally:
                self._abort = lambda: False
            chunks, self._chunks = self._chunks, []
        if result != EE_OK:
            raise EspeakError(f"espeak_Synth failed with code {result}")
        return b"".join(chunks)

    def check_voice(self, name: str) -> bool:
        """True when eSpeak knows the voice ``name``."""
        with self.lock:
            self._voice = None
            return bool(self._lib.espeak_SetVoiceByName(name.encode()) == EE_OK)


__all__ = ["EspeakEngine", "EspeakError", "Voice"]
