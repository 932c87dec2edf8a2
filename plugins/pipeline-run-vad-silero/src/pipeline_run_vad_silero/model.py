"""The vendored Silero VAD ONNX model and a small stateful wrapper around it."""

from __future__ import annotations

import threading
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

MODEL_FILE = "silero_vad.onnx"
#: samples per window the model accepts, by model sample rate.
WINDOW = {16000: 512, 8000: 256}
#: samples of the previous window the model sees in front of each new one.
CONTEXT = {16000: 64, 8000: 32}

_session: Any = None
_session_lock = threading.Lock()


def model_bytes() -> bytes:
    """The ONNX model shipped inside this package."""
    return (resources.files("pipeline_run_vad_silero") / "data" / MODEL_FILE).read_bytes()


def shared_session() -> Any:
    """One single-threaded CPU ``InferenceSession`` per process (``run`` is thread-safe)."""
    global _session
    with _session_lock:
        if _session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.log_severity_level = 3
            _session = onnxruntime.InferenceSession(
                model_bytes(), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return _session


class SileroModel:
    """Speech probability per window, carrying the model's recurrent state between calls."""

    def __init__(self, sample_rate: int = 16000) -> None:
        if sample_rate not in WINDOW:
            raise ValueError(f"Silero runs at 8000 or 16000 Hz, not {sample_rate}")
        self.sample_rate = sample_rate
        self.window = WINDOW[sample_rate]
        self._session = shared_session()
        self._sr = np.array(sample_rate, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """Forget the recurrent state and the context samples."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT[self.sample_rate]), dtype=np.float32)

    def __call__(self, samples: npt.NDArray[np.float32]) -> float:
        """Probability 0..1 that ``samples`` (exactly one window, -1..1) hold speech."""
        if samples.shape != (self.window,):
            raise ValueError(f"expected {self.window} samples, got {samples.shape}")
        x = np.concatenate([self._context, samples.reshape(1, -1)], axis=1)
        output, state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._state = state
        self._context = x[:, -self._context.shape[1] :]
        return float(output[0][0])


__all__ = ["CONTEXT", "WINDOW", "SileroModel", "model_bytes", "shared_session"]
