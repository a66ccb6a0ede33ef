"""Canary behind the registry and the streaming policy, on real (synthesised) speech.

The model gives no times: the policy places Canary's words over the speech it heard.
The scripted decoder says one word per burst of speech the encoder found in the buffer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from models_app.registry import ModelError, registry
from models_app.tests.onnx_graphs import (
    CANARY_PIECES,
    Recorder,
    canary_decoder,
    canary_encoder,
    canary_ids,
    speech_with_pauses,
    stream_in_chunks,
    write_canary,
)

SCRIPT = canary_ids("▁guten", "▁tag", "▁hello", "▁world", "▁again")


@pytest.fixture
def model_path(tmp_path: Path, settings) -> Iterator[Path]:
    settings.CANARY_MODEL_PATH = tmp_path / "canary"
    registry._loaded.pop("canary-1b", None)
    yield settings.CANARY_MODEL_PATH
    registry._loaded.pop("canary-1b", None)


def write_speech_model(directory: Path) -> None:
    decoder = canary_decoder(SCRIPT, len(CANARY_PIECES), CANARY_PIECES.index("<|endoftext|>"))
    write_canary(directory, canary_encoder(), decoder)


def test_the_registry_shows_canary_available_as_soon_as_its_files_are_in_place(model_path: Path) -> None:
    described = registry.describe("canary-1b")
    assert not described["available"]
    assert "python manage.py download_model canary-1b" in described["unavailable_reason"]
    write_speech_model(model_path)
    described = registry.describe("canary-1b")
    assert described["available"] and described["translates"]
    assert described["provider"] == "CPUExecutionProvider"


def test_a_translating_stream_gives_final_words_placed_over_the_speech(model_path: Path, tmp_path: Path) -> None:
    write_speech_model(model_path)
    audio, spans = speech_with_pauses(tmp_path)
    stream = registry.create_transcriber("canary-1b", language="de", target_language="en", preset="low_latency")
    engine = registry.loaded("canary-1b").engine
    recorder = Recorder(engine.decoder)  # type: ignore[attr-defined]
    engine.decoder = recorder  # type: ignore[attr-defined]
    chunks = stream_in_chunks(stream, audio)

    prompts = {tuple(feeds["input_ids"][0, 4:6]) for feeds, _ in recorder.calls if feeds["decoder_mems"].shape[2] == 0}
    assert prompts == {tuple(canary_ids("<|de|>", "<|en|>"))}
    assert chunks[-1].is_final
    finals = [segment for chunk in chunks for segment in chunk.finals]
    words = [word for segment in finals for word in segment.words]
    assert len(words) >= 3
    assert {w.text for w in words} <= {" guten", " tag", " hello", " world", " again"}
    for word in words:  # placed by the policy over what the VAD heard as speech, in media time
        assert any(start - 0.3 <= word.start <= end + 0.3 for start, end in spans), word
        assert word.end <= spans[-1][1] + 0.3
    assert any(word.start >= spans[1][0] - 0.3 for word in words)
    for before, after in itertools.pairwise(finals):
        assert after.start_time >= before.end_time - 1e-6


def test_the_registry_refuses_translations_canary_cannot_do(model_path: Path) -> None:
    write_speech_model(model_path)
    with pytest.raises(ModelError, match="only into en"):
        registry.create_transcriber("canary-1b", language="de", target_language="fr")
