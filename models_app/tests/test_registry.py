"""The registry: built from settings, truthful about what is missing, loads each engine once."""

from __future__ import annotations

import re
import threading

import pytest

from models_app.engines.base import Engine, PassResult
from models_app.registry import ModelError, ModelRegistry, ModelSpec, registry


def test_the_three_models_are_listed():
    assert list(registry.specs) == ["parakeet-tdt", "canary-1b", "whisper"]


def test_the_bundled_whisper_is_available_without_any_download():
    described = registry.describe("whisper")

    assert described["available"] is True
    assert described["unavailable_reason"] is None
    assert described["languages"] == ["en"]


@pytest.mark.parametrize(
    ("model_id", "setting"), [("parakeet-tdt", "TDT_MODEL_PATH"), ("canary-1b", "CANARY_MODEL_PATH")]
)
def test_a_model_without_files_says_what_is_missing_and_how_to_get_it(settings, tmp_path, model_id, setting):
    setattr(settings, setting, tmp_path / "nothing-here")

    described = registry.describe(model_id)

    assert described["available"] is False
    assert "download_model" in described["unavailable_reason"]
    assert str(tmp_path / "nothing-here") in described["unavailable_reason"]
    with pytest.raises(ModelError) as error:
        registry.create_transcriber(model_id)
    assert str(error.value) == described["unavailable_reason"]


def test_a_whisper_model_that_is_not_downloaded_is_unavailable(settings):
    settings.WHISPER_MODEL = "large-v3"

    described = registry.describe("whisper")

    assert described["available"] is False
    assert "not downloaded" in described["unavailable_reason"]
    assert "download_model whisper" in described["unavailable_reason"]


def test_a_whisper_directory_without_model_files_is_named(settings, tmp_path):
    settings.WHISPER_MODEL = str(tmp_path)

    assert registry.describe("whisper")["unavailable_reason"] == (
        f"WHISPER_MODEL={tmp_path} is not a CTranslate2 Whisper model: model.bin, config.json missing."
    )


def test_an_unknown_model_is_a_clear_error():
    with pytest.raises(
        ModelError, match=re.escape("There is no model 'nope'. Known models: parakeet-tdt, canary-1b, whisper.")
    ):
        registry.create_transcriber("nope")


def test_an_unknown_preset_is_a_clear_error():
    with pytest.raises(
        ModelError, match=re.escape("There is no preset 'fastest'. Presets: low_latency, balanced, accurate.")
    ):
        registry.create_transcriber("whisper", preset="fastest")


def test_a_language_the_model_does_not_know_is_a_clear_error():
    with pytest.raises(ModelError, match="does not transcribe 'fr'"):
        registry.create_transcriber("whisper", language="fr")
    with pytest.raises(ModelError, match="translates 'en' not at all"):
        registry.create_transcriber("whisper", language="en", target_language="de")


class CountingEngine(Engine):
    loads = 0

    def __init__(self) -> None:
        CountingEngine.loads += 1

    @classmethod
    def missing_files(cls, location):
        return None

    def transcribe(self, requests):
        return [PassResult() for _ in requests]


def test_an_engine_loads_once_however_many_streams_ask_at_the_same_time():
    CountingEngine.loads = 0
    spec = ModelSpec(
        id="counting",
        display_name="Counting",
        description="",
        missing=lambda: None,
        load=CountingEngine,
        languages=lambda: ["en"],
    )
    fresh = ModelRegistry({"counting": spec})
    streams = []
    threads = [threading.Thread(target=lambda: streams.append(fresh.create_transcriber("counting"))) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert CountingEngine.loads == 1
    assert len(streams) == 10
    assert len({id(s.runner) for s in streams}) == 1
    assert len({id(s) for s in streams}) == 10
    assert fresh.describe("counting")["loaded"] is True


def test_an_engine_is_not_loaded_before_it_is_needed():
    fresh = ModelRegistry({"counting": registry.specs["whisper"]})

    assert fresh.describe("counting")["loaded"] is False
    assert fresh.describe("counting")["memory_mb"] is None
