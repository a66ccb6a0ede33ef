"""Small ONNX graphs with the published names, dtypes and ranks of the NeMo exports.

The real weights cannot be downloaded here, so the tests (and the benchmark) run the
real engines on graphs built with `onnx.helper` whose outputs are planned:

* TDT: the encoder returns a script (or codes derived from the audio's loudness), and
  the decoder+joint reads, from the encoder frame it is given, the logits planned for
  "the n-th token so far", where n is counted in its LSTM states (+1 per call). Only an
  engine that feeds back the states of non-blank steps, and the last token as target,
  gets the planned sequence.
* Canary: the decoder's next token depends on the sequence length it has seen (cache
  length M + new ids L) and, optionally, on how many bursts of speech the encoder found;
  its hidden states carry the fed ids, so the cache's content can be checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from models_app.streaming import StreamingTranscriber, TranscriptionChunk

OPSET = 17
IR_VERSION = 8
FLOAT, INT32, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL
DURATIONS = 5
SUBSAMPLING = 8
HIGH = 10.0  # the logit of a planned choice; everything else is 0

# a small vocabulary for the rule tests: <blk> is the last id, as published
TDT_PIECES = [
    "<unk>", "▁hello", "▁world", ",", ".", "▁it", "'s", "▁fine", "▁one", "▁two",
    "▁three", "▁four", "▁skipped", "▁wrong", "▁mismatch", "<blk>",
]  # fmt: skip
LANGUAGE_CODES = [
    "en", "bg", "hr", "cs", "da", "nl", "et", "fi", "fr", "de", "el", "hu", "it",
    "lv", "lt", "mt", "pl", "pt", "ro", "sk", "sl", "es", "sv", "ru", "uk",
]  # fmt: skip
CANARY_SPECIALS = [
    "<unk>", "<|endoftext|>", "<|startofcontext|>", "<|startoftranscript|>", "<|emo:undefined|>",
    "<|pnc|>", "<|nopnc|>", "<|noitn|>", "<|notimestamp|>", "<|nodiarize|>",
    *[f"<|{code}|>" for code in LANGUAGE_CODES],
]  # fmt: skip
CANARY_PIECES = [*CANARY_SPECIALS, "▁", "▁hello", "▁world", ".", "▁guten", "▁tag", "▁wrong", "▁again"]


class Graph:
    """A tiny builder: constants and ops get generated names; `model()` wraps them up."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: np.ndarray | float | int | list[int], dtype: type = np.float32) -> str:
        name = self._name("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def ints(self, *values: int) -> str:
        return self.const(list(values), np.int64)

    def op(self, kind: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        name = out or self._name(kind.lower())
        self.nodes.append(helper.make_node(kind, list(inputs), [name], **attrs))
        return name

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "scripted", inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model


def tensor(name: str, dtype: int, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


# --- TDT -------------------------------------------------------------------------------------------


@dataclass
class TdtScript:
    """What the scripted joint emits on each (frame, tokens-so-far) it is asked about.

    `plan[(t, n)] = (piece, duration)` (or `(piece, duration, logit)`); pairs not planned
    emit blank with duration 1. `sequence` is the tokens an engine should emit, in order:
    the joint checks that the target it is given is the previous one (else it emits
    `▁mismatch`).
    """

    frames: int
    slots: int
    plan: dict[tuple[int, int], tuple] = field(default_factory=dict)
    sequence: list[str] | None = None
    pieces: list[str] = field(default_factory=lambda: list(TDT_PIECES))

    @property
    def vocab(self) -> int:
        return len(self.pieces)

    @property
    def slot_width(self) -> int:
        return self.vocab + DURATIONS + 1  # token logits, duration logits, expected previous token

    @property
    def width(self) -> int:
        return self.slots * self.slot_width

    def slot(self, piece: str, duration: int, logit: float = HIGH, previous: float = -1.0) -> np.ndarray:
        row = np.zeros(self.slot_width, np.float32)
        row[self.pieces.index(piece)] = logit
        row[self.vocab + duration] = HIGH
        row[-1] = previous
        return row

    def encoder_frames(self) -> np.ndarray:
        """[T', D]: the encoder output the plan needs."""
        blank = self.pieces[-1]
        frames = np.tile(self.slot(blank, 1), (self.frames, self.slots))
        for (t, n), (piece, duration, *logit) in self.plan.items():
            previous = -1.0
            if self.sequence is not None:
                previous = float(self.pieces.index(self.sequence[n - 1] if n > 0 else blank))
            row = self.slot(piece, duration, logit[0] if logit else HIGH, previous)
            frames[t, n * self.slot_width : (n + 1) * self.slot_width] = row
        return frames


def tdt_joint(vocab: int, slots: int, hidden: int = 4, error_piece: int | None = None) -> onnx.ModelProto:
    """The scripted decoder+joint: logits = slot n of the encoder frame, n = tokens so far.

    Each call adds 1 to element [0, 0, 0] of both states; n is their mean. A target that
    differs from the slot's expected previous token (when it names one) turns the output
    into `error_piece` with duration 1.
    """
    g = Graph()
    width = vocab + DURATIONS + 1
    rows = g.op("Reshape", "encoder_outputs", g.ints(slots, width))
    s1 = g.op("Gather", g.op("Reshape", "input_states_1", g.ints(-1)), g.const(0, np.int64))
    s2 = g.op("Gather", g.op("Reshape", "input_states_2", g.ints(-1)), g.const(0, np.int64))
    n = g.op("Cast", g.op("Mul", g.op("Add", s1, s2), g.const(0.5)), to=INT64)
    n = g.op("Min", g.op("Max", n, g.const(0, np.int64)), g.const(slots - 1, np.int64))
    row = g.op("Gather", rows, n, axis=0)
    logits = g.op("Slice", row, g.ints(0), g.ints(vocab + DURATIONS), g.ints(0))
    expected = g.op("Gather", row, g.const(vocab + DURATIONS, np.int64))
    target = g.op("Cast", g.op("Gather", g.op("Reshape", "targets", g.ints(-1)), g.const(0, np.int64)), to=FLOAT)
    ok = g.op("Or", g.op("Equal", target, expected), g.op("Less", expected, g.const(0.0)))
    error = np.zeros(vocab + DURATIONS, np.float32)
    error[vocab - 1 if error_piece is None else error_piece] = HIGH
    error[vocab + 1] = HIGH
    chosen = g.op("Where", ok, logits, g.const(error))
    g.op("Reshape", chosen, g.ints(1, 1, 1, vocab + DURATIONS), out="outputs")
    step = np.zeros((2, 1, hidden), np.float32)
    step[0, 0, 0] = 1
    g.op("Add", "input_states_1", g.const(step), out="output_states_1")
    g.op("Add", "input_states_2", g.const(step), out="output_states_2")
    g.op("Identity", "target_length", out="prednet_lengths")
    return g.model(
        [
            tensor("encoder_outputs", FLOAT, ["batch", slots * width, "time"]),
            tensor("targets", INT32, ["batch", "targets_len"]),
            tensor("target_length", INT32, ["batch"]),
            tensor("input_states_1", FLOAT, [2, "batch", hidden]),
            tensor("input_states_2", FLOAT, [2, "batch", hidden]),
        ],
        [
            tensor("outputs", FLOAT, ["batch", "time", "targets_len", vocab + DURATIONS]),
            tensor("prednet_lengths", INT32, ["batch"]),
            tensor("output_states_1", FLOAT, [2, "batch", hidden]),
            tensor("output_states_2", FLOAT, [2, "batch", hidden]),
        ],
    )


def scripted_joint(script: TdtScript, hidden: int = 4) -> onnx.ModelProto:
    """The joint for `script`, answering a wrong target with `▁mismatch` when the vocabulary has it."""
    error = script.pieces.index("▁mismatch") if "▁mismatch" in script.pieces else None
    return tdt_joint(script.vocab, script.slots, hidden, error)


def code_joint(vocab: int, width: int = 1024, hidden: int = 640) -> onnx.ModelProto:
    """A joint of the real widths for the benchmark: encoder channel 0 holds the token id,
    channel 1 the duration index; the states count calls."""
    g = Graph()
    frame = g.op("Reshape", "encoder_outputs", g.ints(-1))
    token = g.op("Gather", frame, g.const(0, np.int64))
    duration = g.op("Gather", frame, g.const(1, np.int64))
    token_logits = g.op("Cast", g.op("Equal", g.const(np.arange(vocab, dtype=np.float32)), token), to=FLOAT)
    duration_logits = g.op("Cast", g.op("Equal", g.const(np.arange(DURATIONS, dtype=np.float32)), duration), to=FLOAT)
    logits = g.op("Mul", g.op("Concat", token_logits, duration_logits, axis=0), g.const(HIGH))
    g.op("Reshape", logits, g.ints(1, 1, 1, vocab + DURATIONS), out="outputs")
    g.op("Add", "input_states_1", g.const(1.0), out="output_states_1")
    g.op("Add", "input_states_2", g.const(1.0), out="output_states_2")
    g.op("Identity", "target_length", out="prednet_lengths")
    return g.model(
        [
            tensor("encoder_outputs", FLOAT, ["batch", width, "time"]),
            tensor("targets", INT32, ["batch", "targets_len"]),
            tensor("target_length", INT32, ["batch"]),
            tensor("input_states_1", FLOAT, [2, "batch", hidden]),
            tensor("input_states_2", FLOAT, [2, "batch", hidden]),
        ],
        [
            tensor("outputs", FLOAT, ["batch", "time", "targets_len", vocab + DURATIONS]),
            tensor("prednet_lengths", INT32, ["batch"]),
            tensor("output_states_1", FLOAT, [2, "batch", hidden]),
            tensor("output_states_2", FLOAT, [2, "batch", hidden]),
        ],
    )


def _encoded_lengths(g: Graph) -> tuple[str, str]:
    """(T' = ceil(T / 8) of the features, encoded lengths ceil(length / 8)) as the exports count."""
    eight = g.const(SUBSAMPLING, np.int64)
    seven = g.const(SUBSAMPLING - 1, np.int64)
    frames = g.op("Gather", g.op("Shape", "audio_signal"), g.ints(2))  # [1]
    out_frames = g.op("Div", g.op("Add", frames, seven), eight)
    lengths = g.op("Div", g.op("Add", "length", seven), eight)
    return out_frames, lengths


def script_encoder(script: np.ndarray, features: int = 128) -> onnx.ModelProto:
    """A TDT encoder that returns the same frames [T', D] for any audio, cut to its length."""
    g = Graph()
    out_frames, lengths = _encoded_lengths(g)
    script = np.asarray(script, np.float32).T[None]  # [1, D, T']
    batch = g.op("Gather", g.op("Shape", "audio_signal"), g.ints(0))
    cut = g.op("Slice", g.const(script), g.ints(0), out_frames, g.ints(2))
    g.op("Expand", cut, g.op("Concat", batch, g.ints(1, 1), axis=0), out="outputs")
    g.op("Min", lengths, g.const(script.shape[2], np.int64), out="encoded_lengths")
    return g.model(
        [tensor("audio_signal", FLOAT, ["batch", features, "frames"]), tensor("length", INT64, ["batch"])],
        [tensor("outputs", FLOAT, ["batch", script.shape[1], "encoded"]), tensor("encoded_lengths", INT64, ["batch"])],
    )


def _speech_onsets(g: Graph, threshold: float) -> str:
    """[B, 1, T'] 1.0 on the encoder frames where loudness (the mean normalised log-mel over
    80 ms) rises above `threshold`, else 0."""
    loudness = g.op("ReduceMean", "audio_signal", axes=[1], keepdims=1)  # [B, 1, T]
    pooled = g.op("AveragePool", loudness, kernel_shape=[SUBSAMPLING], strides=[SUBSAMPLING], ceil_mode=1)
    loud = g.op("Cast", g.op("Greater", pooled, g.const(threshold)), to=FLOAT)  # [B, 1, T']
    before = g.op("Pad", loud, g.ints(0, 0, 1, 0, 0, 0))  # loud[t - 1] at t
    before = g.op("Slice", before, g.ints(0), g.op("Shape", loud, start=2), g.ints(2))
    return g.op("Mul", loud, g.op("Sub", g.const(1.0), before))


def speech_encoder(script: TdtScript, word: list[str], threshold: float = 0.3) -> onnx.ModelProto:
    """A TDT encoder whose frames ask the scripted joint for `word[n]` (n = tokens so far in the
    buffer) with duration 2 where speech starts, and for blank elsewhere."""
    g = Graph()
    _, lengths = _encoded_lengths(g)
    onsets = _speech_onsets(g, threshold)
    blank = np.tile(script.slot(script.pieces[-1], 1), script.slots)
    speak = np.concatenate([script.slot(word[min(n, len(word) - 1)], 2) for n in range(script.slots)])
    blend = g.op("Add", g.op("Mul", onsets, g.const((speak - blank)[None, :, None])), g.const(blank[None, :, None]))
    g.op("Identity", blend, out="outputs")
    g.op("Identity", lengths, out="encoded_lengths")
    return g.model(
        [tensor("audio_signal", FLOAT, ["batch", 128, "frames"]), tensor("length", INT64, ["batch"])],
        [tensor("outputs", FLOAT, ["batch", script.width, "encoded"]), tensor("encoded_lengths", INT64, ["batch"])],
    )


# --- Canary ------------------------------------------------------------------------------------------


def canary_encoder(width: int = 4, threshold: float = 0.3, features: int = 128) -> onnx.ModelProto:
    """Embeddings [B, T', width] whose channel 0 marks where speech starts; mask [B, T'] int64."""
    g = Graph()
    out_frames, lengths = _encoded_lengths(g)
    onsets = g.op("Transpose", _speech_onsets(g, threshold), perm=[0, 2, 1])  # [B, T', 1]
    channel = np.zeros((1, 1, width), np.float32)
    channel[..., 0] = 1
    g.op("Mul", onsets, g.const(channel), out="encoder_embeddings")
    steps = g.op("Range", g.const(0, np.int64), g.op("Squeeze", out_frames), g.const(1, np.int64))
    valid = g.op("Less", g.op("Unsqueeze", steps, g.ints(0)), g.op("Unsqueeze", lengths, g.ints(1)))
    g.op("Cast", valid, to=INT64, out="encoder_mask")
    return g.model(
        [tensor("audio_signal", FLOAT, ["batch", features, "frames"]), tensor("length", INT64, ["batch"])],
        [
            tensor("encoder_embeddings", FLOAT, ["batch", "encoded", width]),
            tensor("encoder_mask", INT64, ["batch", "encoded"]),
        ],
    )


def log_probs(vocab: int, token: int, logit: float = HIGH) -> np.ndarray:
    row = np.zeros(vocab, np.float64)
    row[token] = logit
    return (row - row.max() - np.log(np.exp(row - row.max()).sum())).astype(np.float32)


def canary_decoder(
    script: list[int],
    vocab: int,
    end_of_text: int,
    prompt_length: int = 10,
    count: int | None = None,
    error_token: int | None = None,
    layers: int = 2,
    hidden: int = 3,
    width: int = 4,
    logit: float = HIGH,
) -> onnx.ModelProto:
    """The scripted decoder: after a sequence of M + L tokens it predicts `script[M + L - prompt]`
    while fewer than `count` tokens were generated (default: the speech onsets the encoder
    marked), then <|endoftext|>. Fed more than one id while the cache is not empty, it
    predicts `error_token`. Its hidden states are the ids it was fed, cached."""
    g = Graph()
    table = np.stack([log_probs(vocab, end_of_text), *[log_probs(vocab, t, logit) for t in script]])
    if error_token is not None:
        table = np.concatenate([table, log_probs(vocab, error_token)[None]])
    fed = g.op("Gather", g.op("Shape", "decoder_mems"), g.ints(2))  # M
    new = g.op("Gather", g.op("Shape", "input_ids"), g.ints(1))  # L
    generated = g.op("Sub", g.op("Add", fed, new), g.const(prompt_length, np.int64))
    if count is None:
        mask = g.op("Cast", "encoder_mask", to=FLOAT)
        onsets = g.op("Gather", "encoder_embeddings", g.const(0, np.int64), axis=2)  # [B, T']
        limit = g.op("Cast", g.op("ReduceSum", g.op("Mul", onsets, mask), keepdims=0), to=INT64)
        limit = g.op("Reshape", limit, g.ints(1))
    else:
        limit = g.ints(count)
    index = g.op("Add", g.op("Min", g.op("Max", generated, g.ints(0)), g.ints(len(script) - 1)), g.ints(1))
    index = g.op("Where", g.op("Less", generated, limit), index, g.ints(0))
    if error_token is not None:
        bad = g.op("And", g.op("Greater", fed, g.ints(0)), g.op("Greater", new, g.ints(1)))
        index = g.op("Where", bad, g.ints(len(table) - 1), index)
    row = g.op("Gather", g.const(table), index, axis=0)  # [1, V]
    ids = g.op("Cast", g.op("Unsqueeze", "input_ids", g.ints(2)), to=FLOAT)  # [B, L, 1]
    g.op("Add", g.op("Mul", ids, g.const(0.0)), g.op("Unsqueeze", row, g.ints(0)), out="logits")
    states = g.op("Mul", g.op("Unsqueeze", ids, g.ints(0)), g.const(np.ones((layers, 1, 1, hidden), np.float32)))
    g.op("Concat", "decoder_mems", states, axis=2, out="decoder_hidden_states")
    return g.model(
        [
            tensor("input_ids", INT64, ["batch", "ids"]),
            tensor("encoder_embeddings", FLOAT, ["batch", "encoded", width]),
            tensor("encoder_mask", INT64, ["batch", "encoded"]),
            tensor("decoder_mems", FLOAT, [layers, "batch", "cached", hidden]),
        ],
        [
            tensor("logits", FLOAT, ["batch", "ids", vocab]),
            tensor("decoder_hidden_states", FLOAT, [layers, "batch", "total", hidden]),
        ],
    )


class Recorder:
    """Wraps an InferenceSession: every run's feeds and results, then the real result."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.calls: list[tuple[dict[str, np.ndarray], list[np.ndarray]]] = []

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self.session.run(names, feeds)
        self.calls.append(({k: np.array(v) for k, v in feeds.items()}, [np.array(r) for r in results]))
        return results


# --- the published layout -------------------------------------------------------------------------------


def save(model: onnx.ModelProto, path: Path, external: bool = False) -> Path:
    """Save as published: the fp32 encoder keeps its weights in `<name>.data` beside it."""
    model = onnx.ModelProto.FromString(model.SerializeToString())  # a copy: saving marks its tensors
    if external:  # the float weights go to the data file; small integer constants (shapes) stay inline
        for weights in model.graph.initializer:
            if weights.data_type == FLOAT:
                external_data_helper.set_external_data(weights, f"{path.name}.data")
    onnx.save_model(model, str(path))
    return path


def write_vocab(path: Path, pieces: list[str]) -> Path:
    path.write_text("".join(f"{piece} {i}\n" for i, piece in enumerate(pieces)), encoding="utf-8")
    return path


def write_parakeet(
    directory: Path,
    encoder: onnx.ModelProto,
    joint: onnx.ModelProto,
    pieces: list[str] = TDT_PIECES,
    int8: bool = False,
    max_tokens_per_step: int = 10,
) -> Path:
    """A Parakeet TDT directory in the published layout (int8 names, or fp32 with encoder data)."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".int8.onnx" if int8 else ".onnx"
    save(encoder, directory / f"encoder-model{suffix}", external=not int8)
    save(joint, directory / f"decoder_joint-model{suffix}")
    write_vocab(directory / "vocab.txt", pieces)
    config = {"model_type": "nemo-conformer-tdt", "features_size": 128, "subsampling_factor": SUBSAMPLING,
              "max_tokens_per_step": max_tokens_per_step}  # fmt: skip
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def write_canary(
    directory: Path,
    encoder: onnx.ModelProto,
    decoder: onnx.ModelProto,
    pieces: list[str] = CANARY_PIECES,
    int8: bool = False,
    max_sequence_length: int = 1024,
) -> Path:
    """A Canary directory in the published layout."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".int8.onnx" if int8 else ".onnx"
    save(encoder, directory / f"encoder-model{suffix}", external=not int8)
    save(decoder, directory / f"decoder-model{suffix}")
    write_vocab(directory / "vocab.txt", pieces)
    config = {"model_type": "nemo-conformer-aed", "features_size": 128, "subsampling_factor": SUBSAMPLING,
              "max_sequence_length": max_sequence_length}  # fmt: skip
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def canary_ids(*pieces: str) -> list[int]:
    return [CANARY_PIECES.index(p) for p in pieces]


def parakeet_dir(directory: Path, script: TdtScript, max_tokens_per_step: int = 10, int8: bool = False) -> Path:
    """A Parakeet directory whose encoder returns `script`'s frames for any audio."""
    encoder = script_encoder(script.encoder_frames())
    return write_parakeet(directory, encoder, scripted_joint(script), script.pieces, int8, max_tokens_per_step)


def speech_with_pauses(directory: Path) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Two synthesised sentences between pauses, as a 16 kHz buffer, and their spans in seconds."""
    from faster_whisper import decode_audio

    from transcriber_site.testing import write_speech

    first = decode_audio(str(write_speech(directory / "first.wav", "hello there, this is the first sentence")))
    second = decode_audio(str(write_speech(directory / "second.wav", "and here comes another one, the second")))
    pause = np.zeros(int(1.5 * 16000), np.float32)
    audio = np.concatenate([pause[:16000], first, pause, second, pause])
    start_second = (16000 + len(first) + len(pause)) / 16000
    spans = [(1.0, 1.0 + len(first) / 16000), (start_second, start_second + len(second) / 16000)]
    return audio.astype(np.float32), spans


def stream_in_chunks(
    stream: StreamingTranscriber, audio: np.ndarray, chunk_secs: float = 0.1
) -> list[TranscriptionChunk]:
    """Push `audio` in chunks, then finalize; every chunk the stream returned, in order."""
    step = int(chunk_secs * 16000)
    chunks = [stream.push_audio(audio[i : i + step]) for i in range(0, len(audio), step)]
    return [*chunks, stream.finalize()]
