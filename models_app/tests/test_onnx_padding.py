"""The NeMo engines batch windows of similar length: the encoder is fed at most 5% padding.

A recorder around the encoder session counts the feature frames of every call
(batch x frames of `audio_signal`) against the real ones (the sum of `length`). The
encoders mark where loudness rises, so each buffer's words say where its bursts are:
a result that went to the wrong request, or a time taken from the wrong window, shows.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from models_app.engines.base import PassRequest
from models_app.engines.canary import CanaryEngine
from models_app.engines.onnx import MAX_PADDING, NemoEngine, similar_lengths
from models_app.engines.parakeet import ParakeetEngine
from models_app.tests.onnx_graphs import (
    CANARY_PIECES,
    Recorder,
    TdtScript,
    canary_decoder,
    canary_encoder,
    canary_ids,
    scripted_joint,
    speech_encoder,
    write_canary,
    write_parakeet,
)

WORDS = ["▁hello", "▁world", "▁one", "▁two", "▁three", "▁four"]
LIVE_SECONDS = [12.0, 3.5, 7.2, 9.9, 15.0, 2.1, 5.5, 11.3]  # one pass of each of eight streams


@pytest.fixture
def parakeet(tmp_path: Path) -> ParakeetEngine:
    script = TdtScript(frames=1, slots=len(WORDS) + 1)
    return ParakeetEngine(write_parakeet(tmp_path / "parakeet", speech_encoder(script, WORDS), scripted_joint(script)))


@pytest.fixture
def canary(tmp_path: Path) -> CanaryEngine:
    script = canary_ids("▁hello", "▁world", ".", "▁again")
    decoder = canary_decoder(script, len(CANARY_PIECES), CANARY_PIECES.index("<|endoftext|>"))  # a token per burst
    return CanaryEngine(write_canary(tmp_path / "canary", canary_encoder(), decoder))


def bursts(seconds: float, at: list[float], seed: int = 0) -> np.ndarray:
    """Faint noise with 0.4 s of loud noise starting at each of `at` (seconds)."""
    rng = np.random.default_rng(seed)
    audio = 0.001 * rng.standard_normal(int(seconds * 16000))
    for t in at:
        start = int(t * 16000)
        audio[start : start + 6400] += 0.3 * rng.standard_normal(len(audio[start : start + 6400]))
    return audio.astype(np.float32)


def live_passes() -> list[PassRequest]:
    return [PassRequest(bursts(s, [0.2 + 0.05 * i, 0.6 * s], seed=i)) for i, s in enumerate(LIVE_SECONDS)]


def encoder_frames(engine: NemoEngine, requests: list[PassRequest]) -> tuple[int, int, list[int]]:
    """(frames fed, real frames, batch size of each call) of the encoder over one `transcribe`."""
    recorder = Recorder(engine.encoder)  # type: ignore[attr-defined]
    engine.encoder = recorder  # type: ignore[attr-defined]
    try:
        engine.transcribe(requests)
    finally:
        engine.encoder = recorder.session  # type: ignore[attr-defined]
    fed = sum(feeds["audio_signal"].shape[0] * feeds["audio_signal"].shape[2] for feeds, _ in recorder.calls)
    real = sum(int(feeds["length"].sum()) for feeds, _ in recorder.calls)
    return fed, real, [feeds["audio_signal"].shape[0] for feeds, _ in recorder.calls]


def test_a_60_s_recording_in_windows_of_unequal_length_feeds_at_most_5_percent_padding(
    parakeet: ParakeetEngine,
) -> None:
    audio = bursts(60.0, [1.0, 20.0, 40.0])
    for quiet in (25.0, 55.0):  # windows of 25, 30 and 5 s: padded to the longest, 1.5x the real frames
        audio[int(quiet * 16000) : int((quiet + 0.1) * 16000)] = 0
    fed, real, _ = encoder_frames(parakeet, [PassRequest(audio)])
    assert real == 6000
    assert fed <= MAX_PADDING * real


def test_live_passes_of_mixed_lengths_feed_at_most_5_percent_padding(
    parakeet: ParakeetEngine, canary: CanaryEngine
) -> None:
    for engine in (parakeet, canary):
        fed, real, sizes = encoder_frames(engine, live_passes())
        assert real == sum(int(s * 100) for s in LIVE_SECONDS)
        assert fed <= MAX_PADDING * real
        assert sum(sizes) == len(LIVE_SECONDS) and max(sizes) <= engine.max_batch


def test_live_passes_of_equal_length_still_go_in_one_call(parakeet: ParakeetEngine) -> None:
    requests = [PassRequest(bursts(8.0, [1.0 + i], seed=i)) for i in range(8)]
    fed, real, sizes = encoder_frames(parakeet, requests)
    assert sizes == [8] and fed == real


def test_mixed_lengths_give_each_request_its_own_words_in_order(parakeet: ParakeetEngine) -> None:
    requests = live_passes()
    together = parakeet.transcribe(requests)
    assert together == [parakeet.transcribe([r])[0] for r in requests]
    for i, (seconds, result) in enumerate(zip(LIVE_SECONDS, together, strict=True)):
        assert [w.text for w in result.words] == [" hello", " world"]
        expected = [0.2 + 0.05 * i, 0.6 * seconds]  # where the bursts are, to a frame (80 ms)
        assert [w.start for w in result.words] == pytest.approx(expected, abs=0.1)


def test_canary_gives_each_request_its_own_words_in_mixed_batches(canary: CanaryEngine) -> None:
    requests = [PassRequest(bursts(s, [0.3 + 0.5 * k for k in range(i % 3 + 1)], seed=i)) for i, s in
                enumerate(LIVE_SECONDS)]  # fmt: skip
    together = canary.transcribe(requests)
    assert together == [canary.transcribe([r])[0] for r in requests]
    texts = ["".join(w.text for w in r.words) for r in together]
    assert texts == [
        [" hello", " hello world", " hello world."][i % 3] for i in range(len(LIVE_SECONDS))
    ]  # a token per burst


def test_a_long_recording_keeps_its_word_times_across_windows_batched_apart(parakeet: ParakeetEngine) -> None:
    at = [1.0, 20.0, 29.0, 40.0, 59.5]
    [result] = parakeet.transcribe([PassRequest(bursts(61.0, at))])
    assert [w.start for w in result.words] == pytest.approx(at, abs=0.1)
    assert all(b.start > a.start for a, b in itertools.pairwise(result.words))


@pytest.mark.parametrize("seed", range(8))
def test_similar_lengths_takes_each_index_once_in_full_batches_of_little_padding(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, 3000, rng.integers(1, 40)).tolist()
    if seed % 4 == 0:
        lengths = [1500] * len(lengths)  # equal lengths fill whole batches
    batches = similar_lengths(lengths, 8)
    assert sorted(itertools.chain(*batches)) == list(range(len(lengths)))
    for batch in batches:
        assert 1 <= len(batch) <= 8
        assert max(lengths[i] for i in batch) * len(batch) <= MAX_PADDING * sum(lengths[i] for i in batch)
    if seed % 4 == 0:
        assert [len(b) for b in batches[:-1]] == [8] * (len(batches) - 1)
