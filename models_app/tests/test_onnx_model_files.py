"""Model directories: the published layout is found (int8 or fp32), and a malformed one is
refused at load time with a sentence naming the problem, never in the middle of a session."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from models_app.engines.base import ModelFilesError
from models_app.engines.canary import CanaryEngine
from models_app.engines.onnx import NemoEngine
from models_app.engines.parakeet import ParakeetEngine
from models_app.registry import ModelError, registry
from models_app.tests.onnx_graphs import (
    CANARY_PIECES,
    INT64,
    TDT_PIECES,
    TdtScript,
    canary_decoder,
    canary_encoder,
    parakeet_dir,
    script_encoder,
    scripted_joint,
    write_canary,
    write_parakeet,
    write_vocab,
)

SCRIPT = TdtScript(frames=4, slots=2, plan={(0, 0): ("▁hello", 1)})
EOT = CANARY_PIECES.index("<|endoftext|>")


def write_canary_dir(directory: Path, pieces: list[str] = CANARY_PIECES, int8: bool = False) -> Path:
    decoder = canary_decoder([CANARY_PIECES.index("▁hello")], len(CANARY_PIECES), EOT, count=1)
    return write_canary(directory, canary_encoder(), decoder, pieces, int8=int8)


def renamed(model: onnx.ModelProto, old: str, new: str) -> onnx.ModelProto:
    """The same graph with tensor `old` called `new` (a wrong name, as a different export would have)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in [*model.graph.input, *model.graph.output]:
        if value.name == old:
            value.name = new
    for node in model.graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    return model


WRITERS: dict[str, Callable[[Path], Path]] = {
    "parakeet": lambda directory: parakeet_dir(directory, SCRIPT),
    "canary": write_canary_dir,
}
ENGINES: dict[str, type[NemoEngine]] = {"parakeet": ParakeetEngine, "canary": CanaryEngine}
DECODERS = {"parakeet": "decoder_joint-model.onnx", "canary": "decoder-model.onnx"}


@pytest.mark.parametrize("model", ["parakeet", "canary"])
@pytest.mark.parametrize(
    "missing", ["config.json", "vocab.txt", "encoder-model.onnx.data", "encoder-model.onnx", "decoder"]
)
def test_a_missing_file_is_named_with_how_to_get_it(tmp_path: Path, model: str, missing: str) -> None:
    engine = ENGINES[model]
    directory = WRITERS[model](tmp_path / model)
    assert engine.missing_files(directory) is None
    missing = DECODERS[model] if missing == "decoder" else missing
    (directory / missing).unlink()
    reason = engine.missing_files(directory)
    assert reason is not None
    assert missing in reason and str(directory) in reason
    assert f"python manage.py download_model {engine.MODEL_ID}" in reason
    with pytest.raises(ModelFilesError, match="is not downloaded"):
        engine(directory)


def test_the_registry_reports_the_missing_file_and_refuses_a_stream(tmp_path: Path, settings) -> None:
    settings.TDT_MODEL_PATH = parakeet_dir(tmp_path / "parakeet", SCRIPT)
    (settings.TDT_MODEL_PATH / "vocab.txt").unlink()
    registry._loaded.pop("parakeet-tdt", None)
    described = registry.describe("parakeet-tdt")
    assert not described["available"] and "vocab.txt" in described["unavailable_reason"]
    with pytest.raises(ModelError, match=r"vocab\.txt"):
        registry.create_transcriber("parakeet-tdt")


@pytest.mark.parametrize("model", ["parakeet", "canary"])
def test_int8_files_are_preferred_when_present_unless_fp32_is_asked_for(tmp_path: Path, model: str, settings) -> None:
    engine = ENGINES[model]
    directory = WRITERS[model](tmp_path / model)
    for path in list(directory.glob("*.onnx")):  # the int8 files beside the fp32 ones
        (directory / path.name.replace(".onnx", ".int8.onnx")).write_bytes(path.read_bytes())
    settings.ONNX_PRECISION = "auto"
    assert {p.name for p in engine.from_settings(directory).files.values()} >= {"encoder-model.int8.onnx"}
    settings.ONNX_PRECISION = "fp32"
    assert "encoder-model.onnx" in {p.name for p in engine.from_settings(directory).files.values()}
    settings.ONNX_PRECISION = "int8"
    assert all(".int8." in p.name for role, p in engine.from_settings(directory).files.items() if role in engine.FILES)


def test_asking_for_a_precision_whose_files_are_absent_names_them(tmp_path: Path, settings) -> None:
    fp32 = parakeet_dir(tmp_path / "fp32", SCRIPT)
    int8 = parakeet_dir(tmp_path / "int8", SCRIPT, int8=True)
    settings.ONNX_PRECISION = "int8"
    assert "encoder-model.int8.onnx, decoder_joint-model.int8.onnx" in (ParakeetEngine.missing_files(fp32) or "")
    assert ParakeetEngine.missing_files(int8) is None
    settings.ONNX_PRECISION = "fp32"
    assert "encoder-model.onnx with encoder-model.onnx.data" in (ParakeetEngine.missing_files(int8) or "")
    settings.ONNX_PRECISION = "fast"
    assert "ONNX_PRECISION must be one of auto, int8, fp32" in (ParakeetEngine.missing_files(fp32) or "")


def test_a_joint_with_a_wrong_input_name_is_refused_at_load(tmp_path: Path) -> None:
    directory = parakeet_dir(tmp_path / "parakeet", SCRIPT)
    onnx.save_model(renamed(scripted_joint(SCRIPT), "targets", "tokens"), str(directory / "decoder_joint-model.onnx"))
    expected = (
        r"decoder_joint-model.onnx is not the published export: it lacks the input\(s\) targets; it has unexpected"
    )
    with pytest.raises(ModelFilesError, match=expected + r" input\(s\) tokens"):
        ParakeetEngine(directory)


def test_a_joint_with_a_wrong_output_name_is_refused_at_load(tmp_path: Path) -> None:
    directory = parakeet_dir(tmp_path / "parakeet", SCRIPT)
    onnx.save_model(
        renamed(scripted_joint(SCRIPT), "output_states_2", "states"), str(directory / "decoder_joint-model.onnx")
    )
    with pytest.raises(ModelFilesError, match=r"lacks the output\(s\) output_states_2"):
        ParakeetEngine(directory)


def test_a_joint_whose_targets_have_the_wrong_type_is_refused_at_load(tmp_path: Path) -> None:
    directory = parakeet_dir(tmp_path / "parakeet", SCRIPT)
    joint = scripted_joint(SCRIPT)
    next(i for i in joint.graph.input if i.name == "targets").type.tensor_type.elem_type = INT64
    onnx.save_model(joint, str(directory / "decoder_joint-model.onnx"))
    with pytest.raises(ModelFilesError, match=r"does not take targets as tensor\(int32\) \(it is tensor\(int64\)\)"):
        ParakeetEngine(directory)


def test_a_canary_encoder_with_wrong_output_names_is_refused_at_load(tmp_path: Path) -> None:
    directory = write_canary_dir(tmp_path / "canary")
    encoder = renamed(canary_encoder(), "encoder_embeddings", "outputs")
    write_canary(directory, encoder, canary_decoder([1], len(CANARY_PIECES), EOT, count=1))
    expected = r"encoder-model.onnx is not the published export: it lacks the output\(s\) encoder_embeddings"
    with pytest.raises(ModelFilesError, match=expected):
        CanaryEngine(directory)


def test_a_vocabulary_of_the_wrong_size_for_the_joint_is_refused_at_load(tmp_path: Path) -> None:
    directory = parakeet_dir(tmp_path / "parakeet", SCRIPT)
    write_vocab(directory / "vocab.txt", [*TDT_PIECES[:-2], "<blk>"])
    with pytest.raises(
        ModelFilesError, match=r"has 15 tokens but .*decoder_joint-model.onnx gives 21 outputs, not 15 \+ 5"
    ):
        ParakeetEngine(directory)


def test_a_tdt_vocabulary_without_blank_last_is_refused(tmp_path: Path) -> None:
    directory = parakeet_dir(tmp_path / "parakeet", SCRIPT)
    write_vocab(directory / "vocab.txt", [*TDT_PIECES[:-1], "<pad>"])
    with pytest.raises(ModelFilesError, match="does not end with the blank token <blk>"):
        ParakeetEngine(directory)


def test_a_canary_vocabulary_of_the_wrong_size_is_refused_at_load(tmp_path: Path) -> None:
    directory = write_canary_dir(tmp_path / "canary")
    write_vocab(directory / "vocab.txt", [*CANARY_PIECES, "▁extra"])
    with pytest.raises(
        ModelFilesError, match=f"has {len(CANARY_PIECES) + 1} tokens but .* gives {len(CANARY_PIECES)} logits"
    ):
        CanaryEngine(directory)


def test_a_canary_vocabulary_without_the_prompt_tokens_is_refused(tmp_path: Path) -> None:
    directory = write_canary_dir(tmp_path / "canary")
    write_vocab(directory / "vocab.txt", [p if p not in ("<|pnc|>", "<|mt|>") else "<|x|>" for p in CANARY_PIECES])
    with pytest.raises(ModelFilesError, match=r"lacks the prompt token\(s\) <\|pnc\|> <\|mt\|>"):
        CanaryEngine(directory)


def test_an_unreadable_config_is_named(tmp_path: Path) -> None:
    directory = parakeet_dir(tmp_path / "parakeet", SCRIPT)
    (directory / "config.json").write_text("{not json")
    with pytest.raises(ModelFilesError, match=r"config\.json cannot be read as JSON"):
        ParakeetEngine(directory)
    (directory / "config.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ModelFilesError, match=r"config\.json is not a JSON object"):
        ParakeetEngine(directory)


def test_a_malformed_vocabulary_line_is_named(tmp_path: Path) -> None:
    directory = parakeet_dir(tmp_path / "parakeet", SCRIPT)
    (directory / "vocab.txt").write_text("<unk> 0\n▁hello\n", encoding="utf-8")
    with pytest.raises(ModelFilesError, match=r"vocab\.txt line 2 is not '<token> <id>'"):
        ParakeetEngine(directory)
    (directory / "vocab.txt").write_text("<unk> 0\n▁hello 2\n", encoding="utf-8")
    with pytest.raises(ModelFilesError, match="does not number its 2 tokens 0 to 1"):
        ParakeetEngine(directory)


def test_a_corrupt_onnx_file_is_named(tmp_path: Path) -> None:
    directory = write_canary_dir(tmp_path / "canary", int8=True)
    (directory / "decoder-model.int8.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelFilesError, match=r"ONNX Runtime cannot load .*decoder-model\.int8\.onnx"):
        CanaryEngine(directory)


def test_a_failure_to_load_surfaces_when_the_stream_is_made_not_later(tmp_path: Path, settings) -> None:
    directory = write_canary_dir(tmp_path / "canary")
    write_vocab(directory / "vocab.txt", CANARY_PIECES[:-1])
    settings.CANARY_MODEL_PATH = directory
    registry._loaded.pop("canary-1b", None)
    assert registry.describe("canary-1b")["available"]  # the files are there: only loading can tell
    with pytest.raises((ModelError, ModelFilesError), match="do not belong together"):
        registry.create_transcriber("canary-1b")
    registry._loaded.pop("canary-1b", None)


def test_the_files_download_model_fetches_are_the_layout_the_engines_load(tmp_path: Path) -> None:
    encoder = script_encoder(SCRIPT.encoder_frames())
    fp32 = {p.name for p in parakeet_dir(tmp_path / "fp32", SCRIPT).iterdir()}
    int8 = {p.name for p in write_parakeet(tmp_path / "int8", encoder, scripted_joint(SCRIPT), int8=True).iterdir()}
    assert fp32 == set(ParakeetEngine.published_files(int8=False))
    assert int8 == set(ParakeetEngine.published_files(int8=True))
    canary = {p.name for p in write_canary_dir(tmp_path / "canary").iterdir()}
    assert canary == set(CanaryEngine.published_files(int8=False))
