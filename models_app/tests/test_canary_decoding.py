"""Canary's decoding loop on a scripted decoder: the prompt, the cache fed back, and when it stops.

The decoder graph predicts `script[M + L - prompt length]` (M: cached positions, L: ids
fed) until it has produced `count` tokens, then <|endoftext|>; fed more than one id
with a non-empty cache it predicts `▁wrong`; its hidden states are the ids it was fed.
A recorder around the session keeps every call's inputs and outputs.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models_app.engines.base import PassRequest
from models_app.engines.canary import CanaryEngine
from models_app.tests.onnx_graphs import (
    CANARY_PIECES,
    HIGH,
    Recorder,
    canary_decoder,
    canary_encoder,
    canary_ids,
    log_probs,
    write_canary,
)

SCRIPT = canary_ids("▁hello", "▁world", ".", "▁again")
EOT = CANARY_PIECES.index("<|endoftext|>")
WRONG = CANARY_PIECES.index("▁wrong")
PROMPT_LENGTH = 10


def load(
    tmp_path: Path, count: int = 3, max_sequence_length: int = 1024, **options: Any
) -> tuple[CanaryEngine, Recorder]:
    decoder = canary_decoder(SCRIPT, len(CANARY_PIECES), EOT, PROMPT_LENGTH, count=count, error_token=WRONG)
    directory = write_canary(tmp_path / "canary", canary_encoder(), decoder, max_sequence_length=max_sequence_length)
    engine = CanaryEngine(directory, **options)
    recorder = Recorder(engine.decoder)
    engine.decoder = recorder
    return engine, recorder


def audio(seconds: float = 1.0) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(int(seconds * 16000))).astype(np.float32)


@pytest.mark.parametrize(
    ("source", "target", "languages"),
    [("en", None, ("<|en|>", "<|en|>")), ("de", "de", ("<|de|>", "<|de|>")), ("de", "en", ("<|de|>", "<|en|>")),
     ("en", "fr", ("<|en|>", "<|fr|>"))],
)  # fmt: skip
def test_the_first_call_reads_the_whole_prompt_for_the_chosen_languages(
    tmp_path: Path, source: str, target: str | None, languages: tuple[str, str]
) -> None:
    engine, recorder = load(tmp_path)
    engine.transcribe([PassRequest(audio(), language=source, target_language=target)])
    first = recorder.calls[0][0]["input_ids"]
    assert first.dtype == np.int64
    assert first.tolist() == [canary_ids(
        "▁", "<|startofcontext|>", "<|startoftranscript|>", "<|emo:undefined|>", *languages,
        "<|pnc|>", "<|noitn|>", "<|notimestamp|>", "<|nodiarize|>",
    )]  # fmt: skip
    assert recorder.calls[0][0]["decoder_mems"].shape == (2, 1, 0, 3)


def test_punctuation_can_be_turned_off(tmp_path: Path) -> None:
    engine, recorder = load(tmp_path, punctuation=False)
    engine.transcribe([PassRequest(audio())])
    assert recorder.calls[0][0]["input_ids"][0, 6] == CANARY_PIECES.index("<|nopnc|>")


def test_later_calls_feed_only_the_newest_token_and_the_cache_the_last_call_returned(tmp_path: Path) -> None:
    engine, recorder = load(tmp_path, count=3)
    [result] = engine.transcribe([PassRequest(audio())])
    assert "".join(w.text for w in result.words) == " hello world."
    assert len(recorder.calls) == 4  # three tokens, then <|endoftext|>
    for step, ((_, previous_out), (feeds, _)) in enumerate(itertools.pairwise(recorder.calls)):
        assert feeds["input_ids"].tolist() == [[SCRIPT[step]]]  # only the token the last call chose
        np.testing.assert_array_equal(feeds["decoder_mems"], previous_out[1])  # the cache, as returned
        assert feeds["decoder_mems"].shape[2] == PROMPT_LENGTH + step  # M grows by one per step
    cached_ids = recorder.calls[-1][0]["decoder_mems"][0, 0, :, 0]
    assert cached_ids.tolist() == [*recorder.calls[0][0]["input_ids"][0], *SCRIPT[:2]]


def test_the_script_would_catch_a_loop_that_re_runs_the_whole_sequence(tmp_path: Path) -> None:
    """The control: the whole sequence again over a non-empty cache gives `▁wrong`."""
    engine, _ = load(tmp_path)
    embeddings, mask = engine.encode([audio()])
    prompt = engine.prompt("en")
    logits, mems = engine.step(np.array([prompt], np.int64), embeddings, mask, engine.empty_mems())
    logits, _ = engine.step(np.array([[*prompt, int(logits[0, -1].argmax())]], np.int64), embeddings, mask, mems)
    assert int(logits[0, -1].argmax()) == WRONG


def test_decoding_stops_at_end_of_text(tmp_path: Path) -> None:
    engine, recorder = load(tmp_path, count=1)
    [result] = engine.transcribe([PassRequest(audio())])
    assert [w.text for w in result.words] == [" hello"]
    assert len(recorder.calls) == 2


def test_decoding_stops_at_max_sequence_length(tmp_path: Path) -> None:
    engine, recorder = load(tmp_path, count=10**6, max_sequence_length=PROMPT_LENGTH + 6)
    tokens = engine.decode(*engine.encode([audio()]), engine.prompt("en"), engine.limit(16000, engine.prompt("en")))
    assert len(tokens) == 6 and len(recorder.calls) == 6  # the prompt and six tokens fill 16
    assert [t for t, _ in tokens] == [*SCRIPT, SCRIPT[-1], SCRIPT[-1]]


def test_decoding_stops_at_a_length_that_follows_the_audio(tmp_path: Path) -> None:
    engine, recorder = load(tmp_path, count=10**6)
    [result] = engine.transcribe([PassRequest(audio(1.0))])
    # 16 spare tokens + 10 per second: a decoder that repeats itself stops long before 1024
    assert len(recorder.calls) == 26
    assert len(result.words) == 25  # "." joins "▁world"


def test_words_are_untimed_and_carry_the_tokens_probability(tmp_path: Path) -> None:
    engine, _ = load(tmp_path, count=3)
    [result] = engine.transcribe([PassRequest(audio())])
    assert not result.timed
    assert [(w.text, w.start, w.end) for w in result.words] == [(" hello", 0.0, 0.0), (" world.", 0.0, 0.0)]
    token = float(log_probs(len(CANARY_PIECES), SCRIPT[0], HIGH)[SCRIPT[0]])
    assert result.words[0].probability == pytest.approx(np.exp(token), abs=1e-6)


def test_a_batch_decodes_each_buffer_with_its_own_prompt(tmp_path: Path) -> None:
    engine, recorder = load(tmp_path, count=1)
    results = engine.transcribe([
        PassRequest(audio(1.0), language="de", target_language="en"),
        PassRequest(audio(0.5), language="fr"),
    ])  # fmt: skip
    assert [[w.text for w in r.words] for r in results] == [[" hello"], [" hello"]]
    prompts = [
        feeds["input_ids"][0, 4:6].tolist() for feeds, _ in recorder.calls if feeds["decoder_mems"].shape[2] == 0
    ]
    assert prompts == [canary_ids("<|de|>", "<|en|>"), canary_ids("<|fr|>", "<|fr|>")]
    valid = [feeds["encoder_mask"].shape[1] for feeds, _ in recorder.calls if feeds["decoder_mems"].shape[2] == 0]
    assert valid == [13, 7]  # each buffer's own encoder frames, without the batch's padding


def test_translation_goes_from_english_to_the_others_and_from_the_others_to_english() -> None:
    assert len(CanaryEngine.translation_targets("en")) == 24 and "en" not in CanaryEngine.translation_targets("en")
    assert CanaryEngine.translation_targets("de") == ["en"]
    assert CanaryEngine.translation_targets("xx") == []
    assert CanaryEngine.LANGUAGES[0] == "en" and len(CanaryEngine.LANGUAGES) == 25
