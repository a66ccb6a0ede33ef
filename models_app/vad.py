"""Voice activity detection: Silero VAD (the ONNX file faster-whisper ships), streamed.

One ONNX session per process, shared; each stream keeps its own recurrent state.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
from faster_whisper.utils import get_assets_path

FRAME = 512  # samples per VAD decision (32 ms at 16 kHz)
CONTEXT = 64  # samples of the previous frame the model sees with each frame
FRAME_SECS = FRAME / 16000


@functools.cache
def _session() -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    path = Path(get_assets_path()) / "silero_vad_v6.onnx"
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


_load_lock = threading.Lock()


def session() -> ort.InferenceSession:
    with _load_lock:
        return _session()


class StreamingVad:
    """Speech probability for every 32 ms frame of a stream, computed as audio arrives."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities [n_frames] for the whole frames completed by `samples`."""
        audio = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n = len(audio) // FRAME
        self._pending = audio[n * FRAME :]
        if n == 0:
            return np.zeros(0, np.float32)
        frames = audio[: n * FRAME].reshape(n, FRAME)
        contexts = np.concatenate([self._context[None], frames[:-1, -CONTEXT:]])
        batch = np.concatenate([contexts, frames], axis=1)  # [n, CONTEXT + FRAME]
        self._context = frames[-1, -CONTEXT:].copy()
        probs, self._h, self._c = session().run(None, {"input": batch, "h": self._h, "c": self._c})
        return np.asarray(probs, np.float32).reshape(-1)[:n]


def speech_mask(probs: np.ndarray, threshold: float = 0.5, pad_frames: int = 3) -> np.ndarray:
    """Frames that are speech: above `threshold`, widened by `pad_frames` each side.

    probs: [n_frames] -> bool [n_frames]
    """
    speech = probs >= threshold
    if pad_frames and speech.any():
        kernel = np.ones(2 * pad_frames + 1, bool)
        speech = np.convolve(speech, kernel, mode="same") > 0
    return speech
