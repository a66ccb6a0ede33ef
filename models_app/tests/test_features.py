"""The NeMo log-mel recipe: against a plain-loop computation of MODELS.md, and its invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models_app.engines.features import log_mel, mel_filterbank


def reference_log_mel(audio: np.ndarray, n_mels: int = 128, normalize: bool = True) -> np.ndarray:
    """MODELS.md's recipe one sample, one bin, one frame at a time, in float64: [n_mels, T]."""
    x = [float(v) for v in audio]
    emphasised = [x[0]] + [x[i] - 0.97 * x[i - 1] for i in range(1, len(x))]
    padded = [0.0] * 256 + emphasised + [0.0] * 256
    window = [0.0] * 56 + [0.5 - 0.5 * math.cos(2 * math.pi * i / 399) for i in range(400)] + [0.0] * 56
    cos = [math.cos(2 * math.pi * i / 512) for i in range(512)]
    sin = [math.sin(2 * math.pi * i / 512) for i in range(512)]

    def to_mel(f: float) -> float:
        return f * 3 / 200 if f < 1000 else 15 + math.log(f / 1000) * 27 / math.log(6.4)

    def to_hz(m: float) -> float:
        return m * 200 / 3 if m < 15 else 1000 * math.exp((m - 15) * math.log(6.4) / 27)

    top = to_mel(8000.0)
    edges = [to_hz(top * i / (n_mels + 1)) for i in range(n_mels + 2)]
    frames = len(x) // 160
    logmel = [[0.0] * frames for _ in range(n_mels)]
    for t in range(frames):
        chunk = [padded[t * 160 + i] * window[i] for i in range(512)]
        power = []
        for k in range(257):
            re = sum(chunk[i] * cos[(k * i) % 512] for i in range(56, 456))
            im = sum(chunk[i] * sin[(k * i) % 512] for i in range(56, 456))
            power.append(re * re + im * im)
        for m in range(n_mels):
            low, centre, high = edges[m], edges[m + 1], edges[m + 2]
            energy = 0.0
            for k in range(257):
                f = k * 16000 / 512
                if low < f < high:
                    rise = (f - low) / (centre - low) if f <= centre else (high - f) / (high - centre)
                    energy += power[k] * rise * 2 / (high - low)
            logmel[m][t] = math.log(energy + 2**-24)
    if not normalize:
        return np.array(logmel)
    out = np.zeros((n_mels, frames))
    for m in range(n_mels):
        mean = sum(logmel[m]) / frames
        std = math.sqrt(sum((v - mean) ** 2 for v in logmel[m]) / (frames - 1))
        for t in range(frames):
            out[m, t] = (logmel[m][t] - mean) / (std + 1e-5)
    return out


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 30)) * (1 + np.sin(2 * np.pi * 3 * t))
    return (0.05 * voiced + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def test_features_match_a_plain_loop_computation_of_the_recipe() -> None:
    audio = speechlike(0.15) + np.float32(0.02)  # a DC offset: pre-emphasis must remove most of it
    features, frames = log_mel(audio)
    expected = reference_log_mel(audio)
    assert features.shape == (1, 128, 15) and frames.tolist() == [15]
    np.testing.assert_allclose(features[0], expected, atol=2e-3, rtol=0)
    assert np.abs(features[0] - expected).mean() < 2e-4


def test_the_diarizers_unnormalised_features_match_the_plain_loop() -> None:
    audio = speechlike(0.12, seed=5)
    features, _ = log_mel(audio, normalize=False)
    np.testing.assert_allclose(features[0], reference_log_mel(audio, normalize=False), atol=2e-3, rtol=0)
    assert features.min() < -1.0  # log energies, not centred on 0


def test_eighty_mel_bins_match_the_plain_loop_too() -> None:
    audio = speechlike(0.1, seed=3)
    features, _ = log_mel(audio, n_mels=80)
    assert features.shape == (1, 80, 10)
    np.testing.assert_allclose(features[0], reference_log_mel(audio, n_mels=80), atol=2e-3, rtol=0)


@pytest.mark.parametrize(
    ("samples", "frames"), [(159, 0), (160, 1), (161, 1), (16000, 100), (16159, 100), (40000, 250)]
)
def test_frame_count_is_length_floor_divided_by_the_hop(samples: int, frames: int) -> None:
    features, counted = log_mel(np.ones(samples, np.float32) * 0.1)
    assert counted.tolist() == [frames]
    assert features.shape == (1, 128, frames)


def test_each_bin_has_zero_mean_and_unit_sample_std_over_the_valid_frames() -> None:
    features, _ = log_mel(speechlike(2.0))
    mean = features[0].mean(axis=1)
    std = features[0].std(axis=1, ddof=1)
    np.testing.assert_allclose(mean, 0, atol=1e-5)
    np.testing.assert_allclose(std, 1, atol=1e-3)


def test_a_batch_of_different_lengths_equals_each_buffer_alone_with_zero_padding_frames() -> None:
    long, short = speechlike(1.0, seed=1), speechlike(0.63, seed=2)
    batch = np.zeros((2, len(long)), np.float32)
    batch[0], batch[1, : len(short)] = long, short
    batch[1, len(short) :] = 0.7  # whatever lies past a buffer's length must not matter
    features, frames = log_mel(batch, np.array([len(long), len(short)]))
    alone_long, _ = log_mel(long)
    alone_short, _ = log_mel(short)
    assert frames.tolist() == [100, 63]
    np.testing.assert_allclose(features[0], alone_long[0], atol=1e-5)
    np.testing.assert_allclose(features[1, :, :63], alone_short[0], atol=1e-5)
    assert not features[1, :, 63:].any()


def test_silence_gives_zeros_not_nan() -> None:
    features, _ = log_mel(np.zeros(8000, np.float32))
    assert np.isfinite(features).all() and not features.any()


def test_the_filterbank_is_slaney_area_normalised() -> None:
    bank = mel_filterbank(128).astype(np.float64)
    hz_per_bin = 16000 / 512
    assert bank.shape == (128, 257) and (bank >= 0).all()
    # a triangle of height 2 / width has unit area; the wide upper ones are sampled finely enough to show it
    np.testing.assert_allclose(bank[96:].sum(axis=1) * hz_per_bin, 1.0, rtol=0.025)
    assert bank[:, 257 // 2 + 1 :].any()  # the top filters reach up to 8 kHz
    assert not bank[:, 0].any()  # nothing at 0 Hz: the first triangle starts there


def test_features_come_c_contiguous_so_the_encoder_call_copies_nothing() -> None:
    features, _ = log_mel(np.stack([speechlike(1.0), speechlike(1.0, seed=1)]), np.array([16000, 9000]))
    assert features.flags["C_CONTIGUOUS"] and features.dtype == np.float32


def test_a_long_buffer_computed_in_chunks_equals_it_computed_in_one(monkeypatch: pytest.MonkeyPatch) -> None:
    audio = np.stack([speechlike(3.3, seed=4), speechlike(3.3, seed=5)])
    lengths = np.array([len(audio[0]), 40000])  # 330 and 250 frames: chunks of 128 end inside both
    chunked, _ = log_mel(audio, lengths)
    monkeypatch.setattr("models_app.engines.features.CHUNK", 1000)
    whole, _ = log_mel(audio, lengths)
    np.testing.assert_allclose(chunked, whole, atol=1e-5, rtol=0)
