"""`manage.py download_model`: argument errors, the hub out of reach (as on this machine), and
what a download fetches where (with the hub's client replaced, so no weights are ever fetched)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from models_app.engines.parakeet import ParakeetEngine
from models_app.management.commands import download_model
from models_app.tests.onnx_graphs import TdtScript, parakeet_dir


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("download_model", *args, stdout=out)
    return out.getvalue()


def test_an_unknown_model_is_an_error_naming_the_choices() -> None:
    with pytest.raises(
        CommandError, match=r"invalid choice: 'parakeet' .*'parakeet-tdt', 'canary-1b', 'whisper', 'sortformer'"
    ):
        run("parakeet")


def test_the_model_argument_is_required() -> None:
    with pytest.raises(CommandError, match="the following arguments are required: model"):
        run()


@pytest.mark.parametrize("model", ["whisper", "sortformer"])
def test_int8_is_refused_for_the_models_with_one_published_form(model: str) -> None:
    with pytest.raises(CommandError, match="--int8 is for parakeet-tdt and canary-1b"):
        run(model, "--int8")


def test_the_bundled_whisper_needs_no_download(settings) -> None:
    settings.WHISPER_MODEL = ""
    output = run("whisper")
    assert "bundled tiny.en" in output and "needs no download" in output


def test_an_unreachable_hub_fails_at_once_saying_how_to_copy_the_files(tmp_path: Path, settings, monkeypatch) -> None:
    settings.TDT_MODEL_PATH = tmp_path / "parakeet"
    monkeypatch.setattr(download_model, "hub_endpoint", lambda: "http://127.0.0.1:9")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(CommandError) as error:
        run("parakeet-tdt", "--int8")
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert "cannot be reached from this machine" in message
    for name in ("config.json", "vocab.txt", "encoder-model.int8.onnx", "decoder_joint-model.int8.onnx"):
        assert name in message
    assert str(tmp_path / "parakeet") in message and "TDT_MODEL_PATH" in message
    assert "istupakov/parakeet-tdt-0.6b-v3-onnx" in message


def test_the_real_hub_out_of_reach_here_fails_at_once_too(tmp_path: Path, settings) -> None:
    endpoint = download_model.hub_endpoint()
    if download_model.unreachable_reason(endpoint) is None:
        pytest.skip("the hub answers from this machine: a download would really start")
    settings.CANARY_MODEL_PATH = tmp_path / "canary"
    started = time.monotonic()
    with pytest.raises(CommandError, match="cannot be reached") as error:
        run("canary-1b")
    assert time.monotonic() - started < 15
    assert "encoder-model.onnx.data" in str(error.value) and "CANARY_MODEL_PATH" in str(error.value)
    assert not (tmp_path / "canary").exists()  # nothing half-made


@pytest.mark.parametrize(("model", "int8"), [("parakeet-tdt", True), ("parakeet-tdt", False), ("canary-1b", True)])
def test_a_download_fetches_only_the_published_files_of_one_precision_into_the_configured_path(
    tmp_path: Path, settings, monkeypatch, model: str, int8: bool
) -> None:
    settings.TDT_MODEL_PATH = tmp_path / "parakeet"
    settings.CANARY_MODEL_PATH = tmp_path / "canary"
    settings.ONNX_PRECISION = "auto"
    engine = download_model.ONNX_MODELS[model]
    asked: dict[str, Any] = {}

    def fake_snapshot_download(repo_id: str, **kwargs: Any) -> str:
        asked.update(kwargs, repo_id=repo_id)
        for name in kwargs["allow_patterns"]:
            (Path(kwargs["local_dir"]) / name).write_bytes(b"")
        return str(kwargs["local_dir"])

    monkeypatch.setattr(download_model, "unreachable_reason", lambda endpoint: None)
    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    output = run(model, *(["--int8"] if int8 else []))
    directory = tmp_path / ("parakeet" if model == "parakeet-tdt" else "canary")
    assert asked["repo_id"] == engine.REPO and Path(asked["local_dir"]) == directory
    assert sorted(asked["allow_patterns"]) == sorted(engine.published_files(int8))
    assert any(name.endswith(".data") for name in asked["allow_patterns"]) == (not int8)
    assert "is ready in" in output and engine.missing_files(directory) is None


def test_a_download_that_leaves_files_out_is_reported(tmp_path: Path, settings, monkeypatch) -> None:
    settings.TDT_MODEL_PATH = tmp_path / "parakeet"
    monkeypatch.setattr(download_model, "unreachable_reason", lambda endpoint: None)
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda repo_id, **kwargs: kwargs["local_dir"])
    with pytest.raises(CommandError, match=r"the files are not complete: .* lacks"):
        run("parakeet-tdt", "--int8")


def test_files_copied_by_hand_make_the_model_available(tmp_path: Path) -> None:
    directory = parakeet_dir(tmp_path / "copied", TdtScript(frames=1, slots=1), int8=True)
    assert ParakeetEngine.missing_files(directory) is None


def test_sortformer_out_of_reach_says_where_to_put_the_file(tmp_path: Path, settings, monkeypatch) -> None:
    settings.DIAR_MODEL_PATH = str(tmp_path / "sortformer")
    monkeypatch.setattr(download_model, "hub_endpoint", lambda: "http://127.0.0.1:9")
    with pytest.raises(CommandError) as error:
        run("sortformer")
    message = str(error.value)
    assert "cannot be reached" in message and "altunenes/parakeet-rs" in message
    assert str(tmp_path / "sortformer" / "diar_streaming_sortformer_4spk-v2.onnx") in message
    assert not (tmp_path / "sortformer").exists()


@pytest.mark.parametrize("setting", ["sortformer", "sortformer/mine.onnx"])
def test_sortformer_downloads_its_one_file_where_the_setting_points(
    tmp_path: Path, settings, monkeypatch, setting: str
) -> None:
    settings.DIAR_MODEL_PATH = str(tmp_path / setting)
    asked: dict[str, Any] = {}

    def fake_hf_hub_download(repo_id: str, filename: str, **kwargs: Any) -> str:
        asked.update(kwargs, repo_id=repo_id, filename=filename)
        path = Path(kwargs["local_dir"]) / filename
        path.write_bytes(b"")
        return str(path)

    monkeypatch.setattr(download_model, "unreachable_reason", lambda endpoint: None)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_hf_hub_download)
    output = run("sortformer")
    assert (asked["repo_id"], asked["filename"]) == ("altunenes/parakeet-rs", "diar_streaming_sortformer_4spk-v2.onnx")
    assert Path(asked["local_dir"]) == tmp_path / "sortformer"
    expected = tmp_path / setting if setting.endswith(".onnx") else tmp_path / setting / asked["filename"]
    assert expected.is_file() and "is ready at" in output
    from models_app import diarization

    assert diarization.missing_files(settings.DIAR_MODEL_PATH) is None
