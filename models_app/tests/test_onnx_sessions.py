"""Execution providers and threads from settings, one session per model file per process,
the vocabulary's word assembly and the windows long audio is cut into."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from models_app.engines import onnx as onnx_helpers
from models_app.engines.onnx import Vocabulary, chosen_providers, windows
from models_app.engines.parakeet import ParakeetEngine
from models_app.registry import registry
from models_app.tests.onnx_graphs import TdtScript, parakeet_dir, write_vocab

SCRIPT = TdtScript(frames=4, slots=2, plan={(0, 0): ("▁hello", 1)})


@pytest.fixture
def model_path(tmp_path: Path, settings) -> Iterator[Path]:
    settings.TDT_MODEL_PATH = parakeet_dir(tmp_path / "parakeet", SCRIPT)
    registry._loaded.pop("parakeet-tdt", None)
    yield settings.TDT_MODEL_PATH
    registry._loaded.pop("parakeet-tdt", None)


def test_the_cpu_provider_is_chosen_without_use_gpu(settings) -> None:
    settings.USE_GPU = False
    assert chosen_providers() == ["CPUExecutionProvider"]


def test_use_gpu_picks_cuda_with_the_cpu_as_fallback_when_onnxruntime_offers_it(settings, monkeypatch) -> None:
    settings.USE_GPU = True
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert chosen_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_use_gpu_without_cuda_says_so_and_uses_the_cpu(settings, monkeypatch, caplog) -> None:
    settings.USE_GPU = True
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    onnx_helpers.warn_no_cuda.cache_clear()
    with caplog.at_level(logging.WARNING, logger="models_app.engines.onnx"):
        assert chosen_providers() == ["CPUExecutionProvider"]
    assert "onnxruntime-gpu" in caplog.text


def test_thread_counts_come_from_settings(model_path: Path, settings) -> None:
    settings.INTRA_THREADS, settings.INTER_THREADS = 1, 2
    engine = ParakeetEngine.from_settings(model_path)
    for session in engine.sessions.values():
        options = session.get_session_options()
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 2)
    settings.INTRA_THREADS = 0  # the runtime's default
    default = ParakeetEngine.from_settings(model_path).encoder.get_session_options()
    assert default.intra_op_num_threads == ort.SessionOptions().intra_op_num_threads


def test_every_stream_of_a_model_shares_one_session_per_model_file(model_path: Path, monkeypatch) -> None:
    opened: list[Path] = []
    real_open = onnx_helpers.open_session

    def counting(path: Path, providers: list[str], options: ort.SessionOptions) -> ort.InferenceSession:
        opened.append(path)
        return real_open(path, providers, options)

    monkeypatch.setattr(onnx_helpers, "open_session", counting)
    first = registry.create_transcriber("parakeet-tdt")
    second = registry.create_transcriber("parakeet-tdt", preset="accurate")
    assert first.runner is second.runner and first.runner.engine is second.runner.engine
    assert sorted(p.name for p in opened) == ["decoder_joint-model.onnx", "encoder-model.onnx"]


def test_the_provider_in_use_is_reported_in_the_model_list(model_path: Path) -> None:
    registry.create_transcriber("parakeet-tdt")
    engine = registry.loaded("parakeet-tdt").engine
    assert engine.provider == engine.sessions["encoder"].get_providers()[0] == "CPUExecutionProvider"  # type: ignore[attr-defined]
    described = registry.describe("parakeet-tdt")
    assert described["loaded"] and described["provider"] == "CPUExecutionProvider"


def test_words_are_runs_of_tokens_from_a_word_start_with_specials_dropped(tmp_path: Path) -> None:
    pieces = ["<unk>", "▁it", "'s", "▁fine", ".", "<|en|>", "▁", "5", "▁<", "<blk>"]
    vocab = Vocabulary(write_vocab(tmp_path / "vocab.txt", pieces))
    assert vocab.words([2, 1, 2, 0, 3, 4, 5, 6, 7, 8, 9]) == [
        (" 's", [0]),  # a buffer may start inside a word: it still starts one
        (" it's", [1, 2]),
        (" fine.", [4, 5]),  # <unk> between them is dropped
        (" 5", [7, 8]),  # a bare word-start token joins what follows
        (" <", [9]),  # "▁<" is text, not a special token
    ]
    assert vocab.words([0, 5, 9]) == []


def test_a_vocabulary_token_may_hold_any_character_but_a_newline(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text("<unk> 0\r\n▁a\u2028b 1\r\n\u3000 2\r\n<blk> 3\r\n", encoding="utf-8")
    assert Vocabulary(path).pieces == ["<unk>", "▁a\u2028b", "\u3000", "<blk>"]


def test_audio_up_to_the_window_limit_is_one_window() -> None:
    assert windows(np.zeros(16000 * 30, np.float32)) == [(0, 16000 * 30)]
    assert windows(np.zeros(100, np.float32)) == [(0, 100)]


def test_long_audio_is_cut_at_the_quietest_moment_near_the_end_of_each_window() -> None:
    audio = np.full(16000 * 70, 0.5, np.float32)
    audio[16000 * 26 : 16000 * 26 + 1600] = 0.01  # the quietest 100 ms of the first window's last 5 s
    audio[16000 * 10 : 16000 * 12] = 0  # quieter, but too early to cut there
    bounds = windows(audio)
    assert bounds[0] == (0, 16000 * 26 + 800)
    assert all(end - start <= 16000 * 30 for start, end in bounds)
    assert [b[0] for b in bounds[1:]] == [b[1] for b in bounds[:-1]] and bounds[-1][1] == len(audio)
