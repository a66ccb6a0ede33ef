"""Log-mel features as NeMo's `AudioToMelSpectrogramPreprocessor` computes them, in numpy.

The recipe (MODELS.md): pre-emphasis 0.97, samples past the true length zeroed, 256
zeros of centre padding each side, 512-point frames every 160 samples under a
symmetric 400-point Hann window zero-padded to 512, power spectrum, Slaney mel bank
(0-8000 Hz, area-normalised), `log(mel + 2**-24)`, `len // 160` valid frames, each
mel bin normalised over the valid frames (N-1 standard deviation), padding frames 0.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 160
WINDOW = 400
PREEMPHASIS = 0.97
LOG_GUARD = 2.0**-24
NORM_EPS = 1e-5
F_MAX = 8000.0


def frame_count(samples: int | np.ndarray) -> np.ndarray:
    """Valid feature frames for `samples` samples: `len // 160`."""
    return np.asarray(samples, np.int64) // HOP


def hann_window() -> np.ndarray:
    """[N_FFT] float32: a symmetric Hann window of 400 centred in 512 zeros."""
    n = np.arange(WINDOW)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / (WINDOW - 1))
    pad = (N_FFT - WINDOW) // 2
    return np.pad(window, (pad, N_FFT - WINDOW - pad)).astype(np.float32)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    linear = hz / (200.0 / 3)
    logarithmic = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, logarithmic, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    linear = mel * (200.0 / 3)
    logarithmic = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, logarithmic, linear)


def mel_filterbank(n_mels: int = 128, f_max: float = F_MAX) -> np.ndarray:
    """[n_mels, N_FFT // 2 + 1] float32: triangles on the Slaney scale, each of unit area."""
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(f_max), n_mels + 2))  # [n_mels + 2] Hz
    bins = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)  # [257] Hz
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return (triangles * (2.0 / (upper - lower))).astype(np.float32)


class MelBank:
    """The filter bank as blocks of 16 neighbouring filters over the FFT bins they touch.

    Each triangle spans a few bins only, so the blocks do a tenth of the dense product's
    work. einsum, not BLAS: BLAS would spread these small products over threads that
    fight onnxruntime's for the cores, which made them 100x slower under load.
    """

    def __init__(self, n_mels: int, block: int = 16) -> None:
        self.n_mels = n_mels
        bank = mel_filterbank(n_mels)
        touched = bank != 0
        first, last = touched.argmax(axis=1), bank.shape[1] - touched[:, ::-1].argmax(axis=1)
        self.blocks = []
        for top in range(0, n_mels, block):
            rows = slice(top, min(top + block, n_mels))
            low, high = int(first[rows].min()), int(last[rows].max())
            self.blocks.append((rows, low, high, np.ascontiguousarray(bank[rows, low:high])))

    def __call__(self, power: np.ndarray) -> np.ndarray:
        """power [N, 257] -> mel energies [N, n_mels]."""
        mel = np.empty((len(power), self.n_mels), np.float32)
        for rows, low, high, weights in self.blocks:
            np.einsum("nk,mk->nm", power[:, low:high], weights, out=mel[:, rows])
        return mel


_WINDOW = hann_window()
_BANKS: dict[int, MelBank] = {}


def log_mel(audio: np.ndarray, lengths: np.ndarray | None = None, n_mels: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Normalised log-mel features of a batch.

    audio: [B, S] float32 16 kHz (rows padded to the longest), or [S] for one buffer
    lengths: [B] true lengths in samples (default: all S)
    returns features [B, n_mels, T] float32 with T = S // 160, and frames [B] int64
    (the valid frames of each row; frames past them are 0).
    """
    audio = np.atleast_2d(np.asarray(audio, np.float32))
    batch, samples = audio.shape
    lengths = np.full(batch, samples, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    frames = frame_count(lengths)
    width = samples // HOP
    if n_mels not in _BANKS:
        _BANKS[n_mels] = MelBank(n_mels)

    emphasised = np.empty((batch, samples + N_FFT), np.float32)  # with the centre padding around it
    emphasised[:, : N_FFT // 2] = emphasised[:, N_FFT // 2 + samples :] = 0
    body = emphasised[:, N_FFT // 2 : N_FFT // 2 + samples]
    body[:, :1] = audio[:, :1]
    np.subtract(audio[:, 1:], np.float32(PREEMPHASIS) * audio[:, :-1], out=body[:, 1:])
    body[np.arange(samples)[None] >= lengths[:, None]] = 0
    windows = np.lib.stride_tricks.sliding_window_view(emphasised, N_FFT, axis=1)[:, : width * HOP : HOP]
    spectrum = np.fft.rfft(windows * _WINDOW, axis=-1).reshape(batch * width, N_FFT // 2 + 1)
    power = np.square(spectrum.real) + np.square(spectrum.imag)
    features = np.log(_BANKS[n_mels](power) + np.float32(LOG_GUARD)).reshape(batch, width, n_mels)
    return normalise(features.transpose(0, 2, 1), frames), frames


def normalise(features: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Per mel bin over the valid frames: (x - mean) / (std + 1e-5), N-1 std; padding frames 0.

    features: [B, n_mels, T]; frames: [B]. Rows with fewer than 2 frames divide by 1, not 0.
    """
    valid = (np.arange(features.shape[2])[None] < frames[:, None])[:, None, :]  # [B, 1, T]
    count = np.maximum(frames, 1)[:, None, None]
    # statistics in float64: a constant bin (silence) then centres to exactly 0, not to rounding noise
    mean = (np.where(valid, features, 0).sum(axis=2, keepdims=True, dtype=np.float64) / count).astype(np.float32)
    centred = np.where(valid, features - mean, np.float32(0))
    variance = np.square(centred).sum(axis=2, keepdims=True, dtype=np.float64) / np.maximum(count - 1, 1)
    return centred / (np.sqrt(variance).astype(np.float32) + np.float32(NORM_EPS))
