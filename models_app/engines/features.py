"""Log-mel features as NeMo's `AudioToMelSpectrogramPreprocessor` computes them, in numpy.

The recipe (MODELS.md): pre-emphasis 0.97, samples past the true length zeroed, 256
zeros of centre padding each side, 512-point frames every 160 samples under a
symmetric 400-point Hann window zero-padded to 512, power spectrum, Slaney mel bank
(0-8000 Hz, area-normalised), `log(mel + 2**-24)`, `len // 160` valid frames, each
mel bin normalised over the valid frames (N-1 standard deviation), padding frames 0.

Only the 400 samples under the window are read: they sit at the start of the 512-point
frame instead of its middle, a circular shift that leaves the power spectrum as it is.
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
EDGE = N_FFT // 2 - (N_FFT - WINDOW) // 2  # 200: the zeros before the first window's first sample
CHUNK = 128  # frames per step: its arrays stay in the cache, and its products small (see MelBank)


def frame_count(samples: int | np.ndarray) -> np.ndarray:
    """Valid feature frames for `samples` samples: `len // 160`."""
    return np.asarray(samples, np.int64) // HOP


def hann_window() -> np.ndarray:
    """[WINDOW] float64: the symmetric 400-point Hann window."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / (WINDOW - 1))


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

    Each triangle spans a few bins only, so the blocks do an eighth of the dense product's
    work. A block's product over CHUNK frames (at most 128 x 122 bins x 16 filters) is
    small enough that BLAS runs it on the calling thread: one product over a whole buffer
    is spread over threads that fight onnxruntime's for the cores, 10-100x slower under
    load (einsum stays on one thread but is five times slower than BLAS).
    """

    def __init__(self, n_mels: int, block: int = 16) -> None:
        self.n_mels = n_mels
        bank = mel_filterbank(n_mels)
        touched = bank != 0
        first, last = touched.argmax(axis=1), bank.shape[1] - touched[:, ::-1].argmax(axis=1)
        tops = np.arange(0, n_mels, block)
        lows, highs = np.minimum.reduceat(first, tops), np.maximum.reduceat(last, tops)
        self.blocks = [
            (slice(top, top + block), low, high, np.ascontiguousarray(bank[top : top + block, low:high]))
            for top, low, high in zip(tops.tolist(), lows.tolist(), highs.tolist(), strict=True)
        ]

    def __call__(self, power: np.ndarray, out: np.ndarray) -> None:
        """power [N, 257] -> mel energies into out [n_mels, N] (N at most CHUNK)."""
        for rows, low, high, weights in self.blocks:
            np.matmul(weights, power[:, low:high].T, out=out[rows])


_WINDOW = hann_window()
_BANKS: dict[int, MelBank] = {}


def pre_emphasis(audio: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """audio [B, S] -> [B, EDGE + S + EDGE] float32: x[n] - 0.97 x[n-1], 0 past each length and in the edges."""
    batch, samples = audio.shape
    emphasised = np.zeros((batch, samples + 2 * EDGE), np.float32)
    body = emphasised[:, EDGE : EDGE + samples]
    body[:, :1] = audio[:, :1]
    np.subtract(audio[:, 1:], np.float32(PREEMPHASIS) * audio[:, :-1], out=body[:, 1:])
    shortest = int(lengths.min(initial=samples))
    tail = body[:, shortest:]  # only rows shorter than the batch have samples to clear
    tail[np.arange(shortest, samples)[None] >= lengths[:, None]] = 0
    return emphasised


def log_mel(
    audio: np.ndarray, lengths: np.ndarray | None = None, n_mels: int = 128, normalize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel features of a batch, normalised per bin (the ASR encoders) or not (the diarizer).

    audio: [B, S] float32 16 kHz (rows padded to the longest), or [S] for one buffer
    lengths: [B] true lengths in samples (default: all S)
    returns features [B, n_mels, T] float32 (C-contiguous) with T = S // 160, and
    frames [B] int64 (the valid frames of each row; frames past them are 0).
    """
    audio = np.atleast_2d(np.asarray(audio, np.float32))
    batch, samples = audio.shape
    lengths = np.full(batch, samples, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    frames = frame_count(lengths)
    width = samples // HOP
    bank = _BANKS.get(n_mels) or _BANKS.setdefault(n_mels, MelBank(n_mels))

    windows = np.lib.stride_tricks.sliding_window_view(pre_emphasis(audio, lengths), WINDOW, axis=1)
    windows = windows[:, : width * HOP : HOP]  # [B, T, 400], a view
    features = np.zeros((batch, n_mels, width), np.float32)
    valid = np.minimum(frames, width).tolist()  # a row's padding frames are left at 0, not computed
    rows = min(CHUNK, max(valid, default=0))  # a short buffer (the diarizer's steps) needs short blocks
    frame = np.empty((rows, N_FFT))  # float64: numpy's float64 FFT is twice as fast as its float32 one
    frame[:, WINDOW:] = 0  # the window's zero padding; the window's own samples are written per block
    power = np.empty((rows, N_FFT // 2 + 1), np.float32)
    for row in range(batch):
        for start in range(0, valid[row], CHUNK):
            count = min(CHUNK, valid[row] - start)
            np.multiply(windows[row, start : start + count], _WINDOW, out=frame[:count, :WINDOW])
            spectrum = np.fft.rfft(frame[:count])
            np.square(spectrum.real, out=power[:count], casting="same_kind")
            power[:count] += np.square(spectrum.imag)
            bank(power[:count], features[row, :, start : start + count])
    features += np.float32(LOG_GUARD)
    np.log(features, out=features)
    if not normalize:
        for row, valid_frames in enumerate(valid):
            features[row, :, valid_frames:] = 0  # padding frames are 0, as normalised ones are
        return features, frames
    return normalise(features, frames), frames


def normalise(features: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Per mel bin over the valid frames: (x - mean) / (std + 1e-5), N-1 std; padding frames 0.

    features: [B, n_mels, T], normalised in place; frames: [B]. Rows with fewer than 2
    frames divide by 1, not 0.
    """
    width = features.shape[2]
    shortest = int(frames.min(initial=width))
    tail = features[:, :, shortest:]  # only rows shorter than the batch have frames to clear
    padding = np.broadcast_to((np.arange(shortest, width)[None] >= frames[:, None])[:, None, :], tail.shape)
    count = np.maximum(frames, 1)[:, None, None]
    tail[padding] = 0
    # statistics in float64: a constant bin (silence) then centres to exactly 0, not to rounding noise
    mean = (features.sum(axis=2, keepdims=True, dtype=np.float64) / count).astype(np.float32)
    features -= mean
    tail[padding] = 0
    variance = np.square(features).sum(axis=2, keepdims=True, dtype=np.float64) / np.maximum(count - 1, 1)
    features /= np.sqrt(variance).astype(np.float32) + np.float32(NORM_EPS)
    return features
