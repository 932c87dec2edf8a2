"""PCM utilities: 16-bit bytes <-> numpy, mixdown, levels and sine generation.

Rate changes live in :mod:`runner.audio.resample` (the one resampling path).

Everything works on float32 samples in -1..1 internally; frames carry 16-bit signed
little-endian PCM (interleaved when there is more than one channel).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

#: dBFS reported for digital silence (log of zero).
SILENCE_DBFS = -100.0
#: The dBFS that :func:`level` maps to 0; 0 dBFS maps to 1.
LEVEL_FLOOR_DBFS = -80.0

_INT16_SCALE = 32768.0


def pcm16_to_float(pcm: bytes, num_channels: int = 1) -> FloatArray:
    """Decode 16-bit PCM to float32; shape ``(n,)`` for mono, ``(n, channels)`` otherwise."""
    usable = len(pcm) - len(pcm) % (2 * num_channels)
    samples = np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float32) / _INT16_SCALE
    if num_channels > 1:
        return samples.reshape(-1, num_channels)
    return samples


def float_to_pcm16(samples: npt.ArrayLike) -> bytes:
    """Encode float samples (-1..1, clipped) to 16-bit PCM; 2-D input is interleaved."""
    array = np.asarray(samples, dtype=np.float32)
    scaled = np.clip(np.rint(array * _INT16_SCALE), -32768, 32767).astype("<i2")
    return scaled.tobytes()


def decode_pcm(raw: bytes, sample_width: int, num_channels: int = 1) -> FloatArray:
    """Decode WAV-style integer PCM of 1 (unsigned), 2, 3 or 4 bytes per sample to float32."""
    if sample_width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif sample_width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / _INT16_SCALE
    elif sample_width == 3:
        triples = np.frombuffer(raw[: len(raw) - len(raw) % 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        samples = value.astype(np.float32) / float(1 << 23)
    elif sample_width == 4:
        samples = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
    else:
        raise ValueError(f"unsupported sample width: {sample_width} bytes")
    if num_channels > 1:
        samples = samples[: len(samples) - len(samples) % num_channels].reshape(-1, num_channels)
    return samples


def to_mono(samples: FloatArray) -> FloatArray:
    """Average the channels of ``(n, channels)`` samples; mono input is returned as is."""
    if samples.ndim == 1:
        return samples
    return samples.mean(axis=1, dtype=np.float32)


def to_channels(mono: FloatArray, num_channels: int) -> FloatArray:
    """Duplicate mono samples into ``num_channels`` identical channels."""
    if num_channels == 1:
        return mono
    return np.repeat(mono[:, np.newaxis], num_channels, axis=1)


def rms(samples: FloatArray) -> float:
    """Root mean square of float samples (0 for an empty array)."""
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def dbfs(samples: FloatArray) -> float:
    """RMS level in dB relative to a full-scale square wave; silence is :data:`SILENCE_DBFS`."""
    value = rms(samples)
    if value <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(value))


def level(samples: FloatArray) -> float:
    """A normalised 0..1 loudness: :data:`LEVEL_FLOOR_DBFS` and below is 0, 0 dBFS is 1."""
    return min(1.0, max(0.0, (dbfs(samples) - LEVEL_FLOOR_DBFS) / -LEVEL_FLOOR_DBFS))


def sine(
    frequency: float, sample_rate: int, num_samples: int, *, amplitude: float = 1.0, phase: float = 0.0
) -> tuple[FloatArray, float]:
    """``num_samples`` of a sine starting at ``phase`` (radians); returns samples and the next phase.

    Feeding the returned phase into the next call gives a continuous wave across chunks.
    """
    step = 2.0 * math.pi * frequency / sample_rate
    phases = phase + step * np.arange(num_samples, dtype=np.float64)
    samples = (amplitude * np.sin(phases)).astype(np.float32)
    return samples, math.fmod(phase + step * num_samples, 2.0 * math.pi)


__all__ = [
    "LEVEL_FLOOR_DBFS",
    "SILENCE_DBFS",
    "FloatArray",
    "dbfs",
    "decode_pcm",
    "float_to_pcm16",
    "level",
    "pcm16_to_float",
    "rms",
    "sine",
    "to_channels",
    "to_mono",
]
