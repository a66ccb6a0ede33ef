"""What the NeMo ONNX engines (Parakeet TDT, Canary) share.

* the execution providers and thread counts from settings, and opening a session;
* the published model directory: which files, int8 or fp32, checked before loading;
* `config.json` and `vocab.txt`, and turning word-piece tokens into words;
* cutting long audio into windows, batching windows of similar length, and the encoder's features.

A `NemoEngine` opens one `InferenceSession` per model file; the registry loads each
engine once per process, so every stream of a model shares those sessions.
"""

from __future__ import annotations

import abc
import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import onnxruntime as ort

from models_app.engines.base import Engine, ModelFilesError, PassRequest, PassResult
from models_app.engines.features import HOP, log_mel
from models_app.streaming import SAMPLE_RATE, Word

log = logging.getLogger(__name__)

#: the 25 European languages of Parakeet TDT 0.6B v3 and Canary 1B v2, English first
LANGUAGES = [
    "en", "bg", "hr", "cs", "da", "nl", "et", "fi", "fr", "de", "el", "hu", "it",
    "lv", "lt", "mt", "pl", "pt", "ro", "sk", "sl", "es", "sv", "ru", "uk",
]  # fmt: skip
PRECISIONS = ("auto", "int8", "fp32")
WORD_START = "▁"
WINDOW_SECS = 30.0  # one encoder call sees at most this much audio (the exports hold far more)
CUT_SEARCH_SECS = 5.0  # a long recording is cut at the quietest moment of a window's last seconds
MIN_SAMPLES = 8 * HOP  # shorter than one encoder frame (80 ms): nothing to transcribe
MAX_PADDING = 1.05  # an encoder call is fed at most this many feature frames per real one


# --- sessions ---------------------------------------------------------------------------------


def chosen_providers() -> list[str]:
    """Execution providers from settings: CUDA first (CPU as fallback) when USE_GPU and available."""
    from django.conf import settings

    if settings.USE_GPU:
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        warn_no_cuda()
    return ["CPUExecutionProvider"]


@functools.cache
def warn_no_cuda() -> None:
    """Once per process: /api/models asks for the provider on every request."""
    log.warning("USE_GPU is set but this onnxruntime offers no CUDA (install onnxruntime-gpu): using the CPU")


def session_options(intra_threads: int = 0, inter_threads: int = 0) -> ort.SessionOptions:
    """Thread counts for one session; 0 leaves onnxruntime's default (one per core)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if intra_threads > 0:
        options.intra_op_num_threads = intra_threads
    if inter_threads > 0:
        options.inter_op_num_threads = inter_threads
    return options


def open_session(path: Path, providers: list[str], options: ort.SessionOptions) -> ort.InferenceSession:
    """The session for one model file; ModelFilesError when onnxruntime cannot load it."""
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFilesError(f"ONNX Runtime cannot load {path}: {reason}") from None


def check_signature(
    session: ort.InferenceSession, path: Path, inputs: dict[str, str], outputs: Sequence[str], hint: str
) -> None:
    """The session takes exactly `inputs` (name: onnx type) and gives at least `outputs`."""
    given = {i.name: i.type for i in session.get_inputs()}
    produced = {o.name for o in session.get_outputs()}
    problems = []
    if missing := [name for name in inputs if name not in given]:
        problems.append(f"lacks the input(s) {', '.join(missing)}")
    if extra := [name for name in given if name not in inputs]:
        problems.append(f"has unexpected input(s) {', '.join(extra)}")
    if wrong := [f"{n} as {kind} (it is {given[n]})" for n, kind in inputs.items() if n in given and given[n] != kind]:
        problems.append(f"does not take {', '.join(wrong)}")
    if missing_out := [name for name in outputs if name not in produced]:
        problems.append(f"lacks the output(s) {', '.join(missing_out)}")
    if problems:
        has = ", ".join(f"{n} ({t})" for n, t in given.items())
        raise ModelFilesError(
            f"{path} is not the published export: it {'; it '.join(problems)} (its inputs: {has}). {hint}"
        )


def static_dim(session: ort.InferenceSession, name: str, axis: int, default: int) -> int:
    """A fixed dimension of an input, or `default` where the export left it symbolic."""
    shape = next(i.shape for i in session.get_inputs() if i.name == name)
    return shape[axis] if axis < len(shape) and isinstance(shape[axis], int) and shape[axis] > 0 else default


# --- the model directory ---------------------------------------------------------------------------


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFilesError(f"{path} cannot be read as JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ModelFilesError(f"{path} is not a JSON object.")
    return config


class Vocabulary:
    """`vocab.txt`: one `<token> <id>` per line, ids 0..N-1; `▁` starts a word."""

    def __init__(self, path: Path) -> None:
        pieces: dict[int, str] = {}
        try:
            lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines(): tokens may hold U+2028 etc.
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelFilesError(f"{path} cannot be read: {exc}") from None
        for number, line in enumerate(lines, 1):
            line = line.removesuffix("\r")
            if not line:
                continue
            piece, _, index = line.rpartition(" ")
            if not piece or not index.isdigit():
                raise ModelFilesError(f"{path} line {number} is not '<token> <id>': {line!r}")
            pieces[int(index)] = piece
        if not pieces or sorted(pieces) != list(range(len(pieces))):
            raise ModelFilesError(f"{path} does not number its {len(pieces)} tokens 0 to {len(pieces) - 1}.")
        self.pieces = [pieces[i] for i in range(len(pieces))]
        self.ids = {piece: i for i, piece in enumerate(self.pieces)}
        self.special = np.array([len(p) > 2 and p.startswith("<") and p.endswith(">") for p in self.pieces])

    def __len__(self) -> int:
        return len(self.pieces)

    def words(self, tokens: Sequence[int]) -> list[tuple[str, list[int]]]:
        """The words of a token sequence: (text with its leading space, positions of its tokens).

        A word is a run of tokens that starts at a `▁` token; special `<...>` tokens are dropped.
        """
        words: list[tuple[str, list[int]]] = []
        for position, token in enumerate(tokens):
            if self.special[token]:
                continue
            piece = self.pieces[token]
            text = piece.replace(WORD_START, " ")
            if piece.startswith(WORD_START) or not words:
                words.append((" " + text.lstrip(" "), [position]))
            else:
                words[-1] = (words[-1][0] + text, [*words[-1][1], position])
        return [(text, positions) for text, positions in words if text.strip()]


def choose_file(directory: Path, stem: str, precision: str, external_data: bool) -> Path | None:
    """`stem.int8.onnx` or `stem.onnx` (with its `.onnx.data`) as `precision` asks; None if absent."""
    int8 = directory / f"{stem}.int8.onnx"
    fp32 = directory / f"{stem}.onnx"
    fp32_complete = fp32.is_file() and (not external_data or (directory / f"{stem}.onnx.data").is_file())
    if precision in ("auto", "int8") and int8.is_file():
        return int8
    if precision in ("auto", "fp32") and fp32_complete:
        return fp32
    return None


# --- audio ------------------------------------------------------------------------------------------


def windows(audio: np.ndarray, longest: float = WINDOW_SECS, search: float = CUT_SEARCH_SECS) -> list[tuple[int, int]]:
    """[(start, end)] sample ranges covering `audio` [S], each at most `longest` seconds.

    A window that has to end early ends at the quietest 100 ms of its last `search`
    seconds, so that a cut rarely falls inside a word.
    """
    limit, reach = int(longest * SAMPLE_RATE), int(search * SAMPLE_RATE)
    bounds, start = [], 0
    while len(audio) - start > limit:
        low = start + limit - reach
        energy = np.square(audio[low : start + limit].astype(np.float32)).reshape(-1, HOP).sum(axis=1)  # 10 ms
        quiet = np.convolve(energy, np.ones(10), mode="valid")  # per 100 ms
        cut = low + (int(quiet.argmin()) + 5) * HOP
        bounds.append((start, cut))
        start = cut
    bounds.append((start, len(audio)))
    return bounds


def similar_lengths(lengths: Sequence[int], size: int, padding: float = MAX_PADDING) -> list[list[int]]:
    """Indices into `lengths` in batches of at most `size`, longest first, each batch padded
    to its longest by at most `padding` times its real length.

    Taken longest first, a length joins the open batch while longest x count stays
    within padding x the batch's sum; else it opens the next batch.
    """
    batches: list[list[int]] = []
    total = 0
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        batch = batches[-1] if batches else []
        if batch and len(batch) < size and lengths[batch[0]] * (len(batch) + 1) <= padding * (total + lengths[i]):
            batch.append(i)
            total += lengths[i]
        else:
            batches.append([i])
            total = lengths[i]
    return batches


# --- the engine -------------------------------------------------------------------------------------


class NemoEngine(Engine):
    """A NeMo ONNX export in its published directory: encoder + decoder files, config, vocabulary."""

    LANGUAGES: ClassVar[list[str]] = LANGUAGES
    NAME: ClassVar[str]  # for messages: "Parakeet TDT"
    MODEL_ID: ClassVar[str]  # the registry's id, for `manage.py download_model <id>`
    SETTING: ClassVar[str]  # the setting that holds the directory
    REPO: ClassVar[str]  # the published repository on the Hugging Face hub
    FILES: ClassVar[dict[str, str]]  # role -> file stem; the encoder's fp32 weights lie in a .onnx.data file
    TIMED: ClassVar[bool] = True  # whether the decoder gives word times
    max_batch = 8

    @classmethod
    def published_files(cls, int8: bool) -> list[str]:
        """The files to download for one precision."""
        names = ["config.json", "vocab.txt"]
        for role, stem in cls.FILES.items():
            if int8:
                names.append(f"{stem}.int8.onnx")
            else:
                names += [f"{stem}.onnx", f"{stem}.onnx.data"] if role == "encoder" else [f"{stem}.onnx"]
        return names

    @classmethod
    def model_files(cls, location: Path | str, precision: str = "auto") -> dict[str, Path]:
        """The file for each role, config.json and vocab.txt; ModelFilesError naming what is missing."""
        if precision not in PRECISIONS:
            raise ModelFilesError(f"ONNX_PRECISION must be one of {', '.join(PRECISIONS)}, not '{precision}'.")
        directory = Path(location).expanduser()
        files: dict[str, Path] = {}
        missing: list[str] = []
        for role, stem in cls.FILES.items():
            chosen = choose_file(directory, stem, precision, external_data=role == "encoder")
            if chosen is None:
                fp32 = f"{stem}.onnx" + (f" with {stem}.onnx.data" if role == "encoder" else "")
                missing.append(
                    {"int8": f"{stem}.int8.onnx", "fp32": fp32}.get(precision, f"{stem}.int8.onnx or {fp32}")
                )
            else:
                files[role] = chosen
        for name in ("config.json", "vocab.txt"):
            if (directory / name).is_file():
                files[name] = directory / name
            else:
                missing.append(name)
        if missing:
            raise ModelFilesError(
                f"{cls.NAME} is not downloaded: {directory} lacks {', '.join(missing)}. Run "
                f"`python manage.py download_model {cls.MODEL_ID} --int8` (or without --int8 for fp32), or copy "
                f"the files of {cls.REPO} there by hand (the {cls.SETTING} setting names the directory)."
            )
        return files

    @classmethod
    def missing_files(cls, location: Path | str) -> str | None:
        from django.conf import settings

        try:
            cls.model_files(location, settings.ONNX_PRECISION)
        except ModelFilesError as exc:
            return str(exc)
        return None

    @classmethod
    def from_settings(cls, location: Path | str) -> Self:
        from django.conf import settings

        return cls(
            location,
            providers=chosen_providers(),
            intra_threads=settings.INTRA_THREADS,
            inter_threads=settings.INTER_THREADS,
            precision=settings.ONNX_PRECISION,
        )

    def __init__(
        self,
        location: Path | str,
        providers: list[str] | None = None,
        intra_threads: int = 0,
        inter_threads: int = 0,
        precision: str = "auto",
    ) -> None:
        self.files = self.model_files(location, precision)
        self.config = read_config(self.files["config.json"])
        self.vocab = Vocabulary(self.files["vocab.txt"])
        self.n_mels = int(self.config.get("features_size", 128))
        self.frame_secs = int(self.config.get("subsampling_factor", 8)) * HOP / SAMPLE_RATE
        options = session_options(intra_threads, inter_threads)
        providers = providers or ["CPUExecutionProvider"]
        self.sessions = {role: open_session(self.files[role], providers, options) for role in self.FILES}
        self.provider = self.sessions["encoder"].get_providers()[0]

    def transcribe(self, requests: list[PassRequest]) -> list[PassResult]:
        """Each request's audio, in windows; the encoder runs once per batch of windows of
        similar length (`similar_lengths`: padding is encoder work thrown away), the decoder
        once per window (`window_words`)."""
        pieces = self.windows_of([r.audio for r in requests])
        found: list[list[Word]] = [[] for _ in pieces]
        for batch in similar_lengths([len(audio) // HOP for _, _, audio in pieces], self.max_batch):
            encoded = self.encode([pieces[i][2] for i in batch])
            for i, item in zip(batch, zip(*encoded, strict=True), strict=True):
                index, start, audio = pieces[i]
                found[i] = self.window_words(item, requests[index], start / SAMPLE_RATE, audio)
        results: list[list[Word]] = [[] for _ in requests]
        for (index, _, _), words in zip(pieces, found, strict=True):  # windows are in request, then time order
            results[index] += words
        return [PassResult(words, timed=self.TIMED) for words in results]

    @abc.abstractmethod
    def encode(self, audios: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """The encoder's outputs for a batch of buffers, each with the batch first."""

    @abc.abstractmethod
    def window_words(
        self, encoded: tuple[np.ndarray, ...], request: PassRequest, offset: float, audio: np.ndarray
    ) -> list[Word]:
        """The words of one window from its slice of the encoder's outputs; times from `offset`."""

    def hint(self) -> str:
        return f"Download the published files again with `python manage.py download_model {self.MODEL_ID}`."

    def features(self, audios: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """features [B, n_mels, T] and frames [B] of buffers padded to the longest."""
        lengths = np.array([len(a) for a in audios], np.int64)
        padded = np.zeros((len(audios), int(lengths.max())), np.float32)
        for row, audio in zip(padded, audios, strict=True):
            row[: len(audio)] = audio
        features, frames = log_mel(padded, lengths, self.n_mels)
        return features, frames

    @staticmethod
    def windows_of(audios: Sequence[np.ndarray]) -> list[tuple[int, int, np.ndarray]]:
        """(request index, start sample, samples) of every window long enough to hold a word."""
        return [
            (index, start, audio[start:end])
            for index, audio in enumerate(audios)
            for start, end in windows(audio)
            if end - start >= MIN_SAMPLES
        ]
