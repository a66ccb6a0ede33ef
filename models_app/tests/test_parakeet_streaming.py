"""Parakeet behind the registry and the streaming policy, on real (synthesised) speech.

The encoder graph marks where loudness rises (speech starts) and the joint emits a
word there, so where words land in media time can be checked against where the
speech is.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from models_app.registry import registry
from models_app.tests.onnx_graphs import (
    TdtScript,
    scripted_joint,
    speech_encoder,
    speech_with_pauses,
    stream_in_chunks,
    write_parakeet,
)

WORDS = ["▁hello", "▁world", "▁one", "▁two", "▁three", "▁four"]


@pytest.fixture
def model_path(tmp_path: Path, settings) -> Iterator[Path]:
    settings.TDT_MODEL_PATH = tmp_path / "parakeet"
    registry._loaded.pop("parakeet-tdt", None)
    yield settings.TDT_MODEL_PATH
    registry._loaded.pop("parakeet-tdt", None)


def write_speech_model(directory: Path) -> None:
    script = TdtScript(frames=1, slots=len(WORDS) + 1)
    write_parakeet(directory, speech_encoder(script, WORDS), scripted_joint(script))


def test_the_registry_shows_parakeet_available_as_soon_as_its_files_are_in_place(model_path: Path) -> None:
    described = registry.describe("parakeet-tdt")
    assert not described["available"]
    assert "python manage.py download_model parakeet-tdt" in described["unavailable_reason"]
    write_speech_model(model_path)
    described = registry.describe("parakeet-tdt")
    assert described["available"] and described["unavailable_reason"] is None
    assert described["provider"] == "CPUExecutionProvider" and not described["loaded"]
    assert described["languages"][0] == "en" and len(described["languages"]) == 25


def test_a_stream_gives_final_words_in_media_time_over_the_speech(model_path: Path, tmp_path: Path) -> None:
    write_speech_model(model_path)
    audio, spans = speech_with_pauses(tmp_path)
    stream = registry.create_transcriber("parakeet-tdt", language="de", preset="low_latency")
    chunks = stream_in_chunks(stream, audio)

    assert chunks[-1].is_final
    finals = [segment for chunk in chunks for segment in chunk.finals]
    words = [word for segment in finals for word in segment.words]
    assert len(words) >= 4
    assert {w.text for w in words} <= {" " + w.lstrip("▁") for w in WORDS}
    for word in words:  # every word lies over the speech, in media time
        assert any(start - 0.3 <= word.start and word.end <= end + 0.3 for start, end in spans), word
    assert any(word.start >= spans[1][0] - 0.3 for word in words)  # the second sentence, after the buffer was cut
    assert [w.start for w in words] == sorted(w.start for w in words)
    for before, after in itertools.pairwise(finals):
        assert after.start_time >= before.end_time - 1e-6
    confirmed_until = 0.0
    for chunk in chunks:  # what is final is never taken back by a later partial
        for segment in chunk.segments:
            if segment.is_final:
                confirmed_until = segment.end_time
            elif segment.text:
                assert segment.start_time >= confirmed_until - 1e-6
    loaded = registry.describe("parakeet-tdt")
    assert loaded["loaded"] and loaded["provider"] == "CPUExecutionProvider"
