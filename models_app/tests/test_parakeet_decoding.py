"""Greedy TDT decoding follows MODELS.md's rules exactly, proven on scripted decoder+joint graphs.

Each script plans what the joint emits on each (frame, tokens so far); the frames and
slots an engine that broke a rule would visit emit something else (`▁skipped`,
`▁wrong`, `▁mismatch`), so the token sequence shows which rule was kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models_app.engines.base import PassRequest
from models_app.engines.parakeet import ParakeetEngine, Token
from models_app.tests.onnx_graphs import HIGH, TDT_PIECES, TdtScript, parakeet_dir


def decoded(engine: ParakeetEngine, script: TdtScript) -> list[tuple[str, int, int]]:
    return [(TDT_PIECES[t.id], t.frame, t.duration) for t in engine.decode(script.encoder_frames())]


def load(tmp_path: Path, script: TdtScript, max_tokens_per_step: int = 10) -> ParakeetEngine:
    return ParakeetEngine(parakeet_dir(tmp_path / "parakeet", script, max_tokens_per_step))


def test_a_duration_skips_exactly_the_frames_it_names(tmp_path: Path) -> None:
    script = TdtScript(frames=8, slots=5, sequence=["▁hello", "▁world", ".", "▁it"], plan={
        (0, 0): ("▁hello", 2),
        (1, 1): ("▁skipped", 1),  # where an engine that ignores durations would look next
        (2, 1): ("▁world", 3),
        (3, 2): ("▁skipped", 1),
        (4, 2): ("▁skipped", 1),
        (5, 2): (".", 1),
        (7, 3): ("▁it", 4),  # frame 6 is blank; a skip past the end ends decoding
    })  # fmt: skip
    assert decoded(load(tmp_path, script), script) == [("▁hello", 0, 2), ("▁world", 2, 3), (".", 5, 1), ("▁it", 7, 4)]


def test_a_blank_with_duration_zero_moves_one_frame_and_a_blank_with_a_duration_skips(tmp_path: Path) -> None:
    script = TdtScript(frames=8, slots=4, sequence=["▁one", "▁two", "▁three"], plan={
        (0, 0): ("<blk>", 0),  # blank, duration 0: must still move on (to frame 1)
        (1, 0): ("▁one", 1),
        (2, 1): ("<blk>", 3),  # blank, duration 3: on to frame 5
        (3, 1): ("▁skipped", 1),
        (4, 1): ("▁skipped", 1),
        (5, 1): ("▁two", 0),  # a token with duration 0: stay on frame 5
        (5, 2): ("<blk>", 0),  # then blank with duration 0: frame 6
        (6, 2): ("▁three", 1),
    })  # fmt: skip
    assert decoded(load(tmp_path, script), script) == [("▁one", 1, 1), ("▁two", 5, 0), ("▁three", 6, 1)]


def test_a_frame_emits_at_most_max_tokens_per_step_tokens_then_decoding_moves_on(tmp_path: Path) -> None:
    script = TdtScript(frames=4, slots=10, sequence=["▁one", "▁two", "▁three", "▁it", "'s", "▁fine", "."], plan={
        (0, 0): ("▁one", 0),
        (0, 1): ("▁two", 0),
        (0, 2): ("▁three", 0),
        (0, 3): ("▁wrong", 0),  # a fourth token on frame 0: only without the cap of 3
        (1, 3): ("▁it", 0),
        (1, 4): ("'s", 0),
        (1, 5): ("▁fine", 0),  # the count starts again on each frame: three more here
        (1, 6): ("▁wrong", 0),
        (2, 6): (".", 1),
    })  # fmt: skip
    engine = load(tmp_path, script, max_tokens_per_step=3)
    assert engine.max_tokens_per_step == 3  # read from config.json
    assert decoded(engine, script) == [
        ("▁one", 0, 0), ("▁two", 0, 0), ("▁three", 0, 0), ("▁it", 1, 0), ("'s", 1, 0), ("▁fine", 1, 0), (".", 2, 1),
    ]  # fmt: skip


def states_script() -> TdtScript:
    return TdtScript(frames=4, slots=4, sequence=["▁hello", "▁world", "."], plan={
        (0, 0): ("▁hello", 1),
        (1, 1): ("<blk>", 1),
        (2, 1): ("▁world", 1),  # expects target ▁hello: the last token, not the blank in between
        (2, 2): ("▁wrong", 1),  # reached if the blank step's states had been adopted
        (3, 2): (".", 1),
        (3, 3): ("▁wrong", 1),
    })  # fmt: skip


def test_states_and_target_advance_only_on_non_blank_tokens(tmp_path: Path) -> None:
    script = states_script()
    assert decoded(load(tmp_path, script), script) == [("▁hello", 0, 1), ("▁world", 2, 1), (".", 3, 1)]


def test_the_script_catches_a_loop_that_adopts_states_on_blank_or_feeds_blank_as_target(tmp_path: Path) -> None:
    """The control: two wrong loops over the same graph do not get the planned sequence."""
    script = states_script()
    engine = load(tmp_path, script)
    frames = script.encoder_frames()

    def wrong_loop(adopt_on_blank: bool, target_blank_after_blank: bool) -> list[str]:
        out, last, states = [], engine.blank, engine.states
        for frame in frames:  # every duration here is 1
            logits, new_states = engine.step(frame, last, states)
            token = int(logits[: len(engine.vocab)].argmax())
            if token != engine.blank:
                out.append(TDT_PIECES[token])
            if token != engine.blank or adopt_on_blank:
                states = new_states
            if token != engine.blank or target_blank_after_blank:
                last = token
        return out

    planned = ["▁hello", "▁world", "."]
    assert wrong_loop(adopt_on_blank=False, target_blank_after_blank=False) == planned
    assert wrong_loop(adopt_on_blank=True, target_blank_after_blank=False) != planned
    assert wrong_loop(adopt_on_blank=False, target_blank_after_blank=True) == ["▁hello", "▁mismatch", "▁mismatch"]


def test_decoding_stops_at_the_encoded_length(tmp_path: Path) -> None:
    script = TdtScript(frames=8, slots=3, plan={(1, 0): ("▁hello", 1), (6, 1): ("▁world", 1)})
    engine = load(tmp_path, script)
    five_frames = np.random.default_rng(0).standard_normal(5 * 1280).astype(np.float32)  # 40 mel frames -> 5
    [result] = engine.transcribe([PassRequest(five_frames)])
    assert [w.text for w in result.words] == [" hello"]
    eight_frames = np.random.default_rng(0).standard_normal(8 * 1280).astype(np.float32)
    [result] = engine.transcribe([PassRequest(eight_frames)])
    assert [w.text for w in result.words] == [" hello", " world"]


def test_word_confidence_is_exp_of_the_mean_token_log_softmax(tmp_path: Path) -> None:
    script = TdtScript(
        frames=3, slots=3, plan={(0, 0): ("▁it", 1, 4.0), (1, 1): ("'s", 1, HIGH), (2, 2): ("▁fine", 1, 2.0)}
    )
    engine = load(tmp_path, script)
    tokens = engine.decode(script.encoder_frames())
    vocab = len(TDT_PIECES)

    def log_softmax(logit: float) -> float:  # one token at `logit`, the others (blank included) at 0
        return logit - float(np.log(np.exp(logit) + vocab - 1))

    assert [t.log_prob for t in tokens] == pytest.approx(
        [log_softmax(4.0), log_softmax(HIGH), log_softmax(2.0)], abs=1e-5
    )
    words = engine.words(tokens)
    assert [w.text for w in words] == [" it's", " fine"]
    assert words[0].probability == pytest.approx(np.exp((log_softmax(4.0) + log_softmax(HIGH)) / 2), abs=1e-6)
    assert words[1].probability == pytest.approx(np.exp(log_softmax(2.0)), abs=1e-6)
    assert all(0 < w.probability <= 1 for w in words if w.probability is not None)


def test_a_token_list_is_turned_into_words_with_frame_times(tmp_path: Path) -> None:
    engine = load(tmp_path, TdtScript(frames=1, slots=1))
    ids = {piece: i for i, piece in enumerate(TDT_PIECES)}
    tokens = [
        Token(ids["▁it"], 0, 1, 0.0),
        Token(ids["'s"], 1, 2, 0.0),  # ends at frame 3
        Token(ids["▁fine"], 3, 0, 0.0),
        Token(ids[","], 3, 1, 0.0),  # ends at frame 4, before the next token at 5
        Token(ids["<unk>"], 5, 1, 0.0),  # special: dropped from the text
        Token(ids["▁hello"], 6, 0, 0.0),
        Token(ids["."], 9, 0, 0.0),  # the last token: at least one frame
    ]
    words = engine.words(tokens, offset=10.0)
    assert [(w.text, round(w.start, 3), round(w.end, 3)) for w in words] == [
        (" it's", 10.0, 10.24),
        (" fine,", 10.24, 10.32),
        (" hello.", 10.48, 10.8),
    ]
    assert all(w.probability == 1.0 for w in words)
