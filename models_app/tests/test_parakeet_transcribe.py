"""Parakeet's `transcribe`: batches of buffers, long audio in windows, times from the buffer's start."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from models_app.engines.base import PassRequest
from models_app.engines.onnx import WINDOW_SECS
from models_app.engines.parakeet import ParakeetEngine
from models_app.tests.onnx_graphs import TdtScript, parakeet_dir

# every window's encoder output: " hello," at its frame 0 and " world." at its frame 2
SCRIPT = TdtScript(frames=400, slots=6, plan={
    (0, 0): ("▁hello", 1), (1, 1): (",", 1), (2, 2): ("▁world", 0), (2, 3): (".", 1),
})  # fmt: skip


@pytest.fixture
def engine(tmp_path: Path) -> ParakeetEngine:
    return ParakeetEngine(parakeet_dir(tmp_path / "parakeet", SCRIPT))


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * 16000))).astype(np.float32)


def test_one_buffer_gives_words_with_leading_spaces_and_times_from_its_start(engine: ParakeetEngine) -> None:
    [result] = engine.transcribe([PassRequest(noise(2.0))])
    assert result.timed
    assert [(w.text, round(w.start, 3), round(w.end, 3)) for w in result.words] == [
        (" hello,", 0.0, 0.16),
        (" world.", 0.16, 0.24),
    ]
    assert "".join(w.text for w in result.words).strip() == "hello, world."


def test_a_batch_gives_each_buffer_what_it_would_get_alone(engine: ParakeetEngine) -> None:
    requests = [PassRequest(noise(1.3, seed=1)), PassRequest(noise(0.2, seed=2)), PassRequest(noise(0.05))]
    together = engine.transcribe(requests)
    alone = [engine.transcribe([r])[0] for r in requests]
    assert together == alone
    assert [w.text for w in together[1].words] == [" hello,", " world."]
    assert together[2].words == []  # shorter than one encoder frame


def test_long_audio_is_cut_in_windows_at_quiet_moments_and_times_stay_in_the_buffer(engine: ParakeetEngine) -> None:
    audio = noise(70.0)
    for quiet in (27.0, 54.0):  # 100 ms of silence inside each window's last five seconds
        audio[int(quiet * 16000) : int((quiet + 0.1) * 16000)] = 0
    [result] = engine.transcribe([PassRequest(audio)])
    starts = [round(w.start, 3) for w in result.words if w.text == " hello,"]
    assert starts == [0.0, 27.05, 54.05]  # each window starts at the middle of the quiet moment
    worlds = [round(w.start, 3) for w in result.words if w.text == " world."]
    assert worlds == [round(s + 0.16, 3) for s in starts]
    assert all(b.start >= a.start for a, b in itertools.pairwise(result.words))
    assert max(w.end for w in result.words) <= 70.0


def test_windows_never_exceed_the_limit_even_without_a_quiet_moment(engine: ParakeetEngine) -> None:
    [result] = engine.transcribe([PassRequest(noise(2 * WINDOW_SECS + 1))])
    starts = [w.start for w in result.words if w.text == " hello,"]
    assert len(starts) == 3
    assert all(0 < b - a <= WINDOW_SECS for a, b in itertools.pairwise(starts))
