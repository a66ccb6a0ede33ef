"""NVIDIA's streaming Sortformer (4 speakers), as NeMo exports it to ONNX: who speaks when, chunk by chunk.

The export (MODELS.md) takes one chunk of log-mel frames with the stream's state, a
speaker cache and a FIFO of earlier frames' embeddings, and gives each of those rows'
speaker activity (a sigmoid per speaker slot) and the chunk's embeddings. The caller
keeps the state: `SpeakerState.update` is NeMo's `streaming_update` (the chunk's frames
join the FIFO; frames that overflow it move to the cache; a cache past its size is
compressed to the frames that best characterise each speaker, with a silence profile
standing in for the disabled ones). Slots are numbered in the order speakers first speak,
and the cache keeps them stable for the whole stream.

`SortformerEngine` is one InferenceSession per process, shared by every stream; a
`SpeakerState` is one stream's few hundred kilobytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models_app.engines.base import ModelFilesError
from models_app.engines.features import HOP
from models_app.engines.onnx import check_signature, chosen_providers, open_session, session_options
from models_app.streaming import SAMPLE_RATE

NAME = "Streaming Sortformer 4spk v2"
FILE_NAME = "diar_streaming_sortformer_4spk-v2.onnx"
REPO = "altunenes/parakeet-rs"  # the published export, at the repository's top level
SETTING = "DIAR_MODEL_PATH"
SPEAKERS = 4
EMBEDDING = 512
N_MELS = 128
SUBSAMPLING = 8
FRAME_SECS = SUBSAMPLING * HOP / SAMPLE_RATE  # 0.08: one output row per 80 ms
INPUTS = {
    "chunk": "tensor(float)",
    "chunk_lengths": "tensor(int64)",
    "spkcache": "tensor(float)",
    "spkcache_lengths": "tensor(int64)",
    "fifo": "tensor(float)",
    "fifo_lengths": "tensor(int64)",
}
OUTPUTS = ("spkcache_fifo_chunk_preds", "chunk_pre_encode_embs", "chunk_pre_encode_lengths")

# NeMo's speaker-cache compression constants
SILENCE_FRAMES_PER_SPEAKER = 3  # cache rows per speaker given to the silence profile
SCORE_FLOOR = 0.25  # probabilities are clamped to [0.25, 0.75] when scored
STRONG_BOOST_RATE = 0.75  # the best 75 % of a speaker's share are boosted twice...
WEAK_BOOST_RATE = 1.5  # ...the best 150 % once, so that every speaker keeps frames
MIN_POSITIVE_RATE = 0.5  # a speaker with this share of clear frames drops its unclear ones
SILENCE_THRESHOLD = 0.2  # a frame whose activities sum below this is silence


@dataclass(frozen=True)
class Setup:
    """How a stream is cut, in model frames of 80 ms (NVIDIA's published settings)."""

    chunk: int  # frames diarized per step
    left: int  # frames of left context fed again with the chunk
    right: int  # frames of look-ahead: a step waits for them
    fifo: int
    cache: int
    update_period: int  # frames moved from the FIFO to the cache at once

    @property
    def latency_secs(self) -> float:
        """How long after a moment's audio arrives its speaker is known (before the step's own time)."""
        return (self.chunk + self.right) * FRAME_SECS


SETUPS = {
    "low": Setup(chunk=6, left=1, right=7, fifo=188, cache=188, update_period=144),  # 1.04 s
    "high": Setup(chunk=124, left=1, right=1, fifo=124, cache=188, update_period=124),  # 10 s, a tenth of the work
}


def export_path(location: Path | str) -> Path:
    """Where the export is, or goes: `location` itself (a .onnx file), or FILE_NAME in that directory."""
    path = Path(location).expanduser()
    return path if path.suffix == ".onnx" else path / FILE_NAME


def model_file(location: Path | str) -> Path:
    """The export: `location` itself, or FILE_NAME inside it; ModelFilesError saying how to get it."""
    if not str(location).strip():
        raise ModelFilesError(
            f"Speaker diarization is not installed: {SETTING} is not set. Run "
            f"`python manage.py download_model sortformer`, or set {SETTING} to {FILE_NAME}."
        )
    path = export_path(location)
    if not path.is_file():
        raise ModelFilesError(
            f"Speaker diarization is not installed: there is no {path}. Run "
            f"`python manage.py download_model sortformer`, or copy {FILE_NAME} from {REPO} there by hand."
        )
    return path


def missing_files(location: Path | str) -> str | None:
    try:
        model_file(location)
    except ModelFilesError as exc:
        return str(exc)
    return None


class SortformerEngine:
    """One InferenceSession over the export; `step` runs one stream's chunk."""

    def __init__(
        self, location: Path | str, providers: list[str] | None = None, intra_threads: int = 0, inter_threads: int = 0
    ) -> None:
        self.path = model_file(location)
        self.session = open_session(
            self.path, providers or ["CPUExecutionProvider"], session_options(intra_threads, inter_threads)
        )
        check_signature(
            self.session,
            self.path,
            INPUTS,
            OUTPUTS,
            f"Download the published file again with `python manage.py download_model sortformer` ({REPO}).",
        )
        self.provider = self.session.get_providers()[0]

    @classmethod
    def from_settings(cls) -> SortformerEngine:
        from django.conf import settings

        return cls(
            settings.DIAR_MODEL_PATH,
            providers=chosen_providers(),
            intra_threads=settings.INTRA_THREADS,
            inter_threads=settings.INTER_THREADS,
        )

    def step(self, chunk: np.ndarray, cache: np.ndarray, fifo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """chunk [T, 128] log-mel frames, cache [S, 512], fifo [F, 512] -> (activity [S + F + C, 4], the
        chunk's embeddings [C, 512]) with C = ceil(T / 8). Cache and FIFO go in trimmed to their lengths."""
        preds, embeddings, lengths = self.session.run(
            list(OUTPUTS),
            {
                "chunk": chunk[None],
                "chunk_lengths": np.array([len(chunk)], np.int64),
                "spkcache": cache[None],
                "spkcache_lengths": np.array([len(cache)], np.int64),
                "fifo": fifo[None],
                "fifo_lengths": np.array([len(fifo)], np.int64),
            },
        )
        rows = int(lengths[0])
        return preds[0, : len(cache) + len(fifo) + rows], embeddings[0, :rows]


@dataclass
class SpeakerState:
    """One stream's speaker cache and FIFO (NeMo's streaming state), as numpy arrays."""

    setup: Setup
    cache: np.ndarray = field(default_factory=lambda: np.zeros((0, EMBEDDING), np.float32))
    cache_preds: np.ndarray | None = None  # kept once the cache has been compressed
    fifo_preds: np.ndarray = field(default_factory=lambda: np.zeros((0, SPEAKERS), np.float32))
    silence: np.ndarray = field(default_factory=lambda: np.zeros(EMBEDDING, np.float32))  # mean silent embedding
    silent_frames: int = 0
    # the FIFO lives at the start of a buffer with room for one more chunk: a step writes its rows
    # there instead of copying the whole FIFO (the buffer shifts once per update period)
    _queue: np.ndarray = field(default_factory=lambda: np.zeros((0, EMBEDDING), np.float32))
    _queued: int = 0

    @property
    def fifo(self) -> np.ndarray:
        """[F, 512]: the FIFO's embeddings, oldest first (a view)."""
        return self._queue[: self._queued]

    @fifo.setter
    def fifo(self, rows: np.ndarray) -> None:
        self._queue = np.zeros((max(len(rows), self.setup.fifo) + self.setup.chunk, rows.shape[1]), np.float32)
        self._queue[: len(rows)] = rows
        self._queued = len(rows)

    def update(self, preds: np.ndarray, embeddings: np.ndarray, left: int, rows: int) -> np.ndarray:
        """Take one step's outputs: preds [S + F + C, 4], embeddings [C, 512], of which the chunk's own
        rows are `left` .. `left + rows` (the rest is context). Returns those rows' activity [rows, 4]."""
        cached, queued = len(self.cache), self._queued
        chunk = embeddings[left : left + rows]
        chunk_preds = preds[cached + queued + left : cached + queued + left + rows]
        if queued + rows > len(self._queue):
            self.fifo = self.fifo  # the first step (or a setter's odd size): a buffer with room
        self._queue[queued : queued + rows] = chunk
        self._queued += rows
        self.fifo_preds = np.concatenate([preds[cached : cached + queued], chunk_preds])
        if self._queued > self.setup.fifo:
            popped = min(max(self.setup.update_period, rows - self.setup.fifo + queued), self._queued)
            out, out_preds = self.fifo[:popped].copy(), self.fifo_preds[:popped]
            self._learn_silence(out, out_preds)
            kept = self._queued - popped
            self._queue[:kept] = self._queue[popped : self._queued]  # numpy copies overlapping slices safely
            self._queued = kept
            self.fifo_preds = self.fifo_preds[popped:]
            self.cache = np.concatenate([self.cache, out])
            if self.cache_preds is not None:
                self.cache_preds = np.concatenate([self.cache_preds, out_preds])
            if len(self.cache) > self.setup.cache:
                if self.cache_preds is None:  # the first compression scores the cache as this step saw it
                    self.cache_preds = np.concatenate([preds[:cached], out_preds])
                self.cache, self.cache_preds = self._compress(self.cache, self.cache_preds)
        return chunk_preds

    def _learn_silence(self, embeddings: np.ndarray, preds: np.ndarray) -> None:
        silent = preds.sum(axis=1) < SILENCE_THRESHOLD
        count = int(silent.sum())
        if count:
            total = self.silence * self.silent_frames + embeddings[silent].sum(axis=0)
            self.silent_frames += count
            self.silence = (total / self.silent_frames).astype(np.float32)

    def _compress(self, embeddings: np.ndarray, preds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cache's `setup.cache` best rows, in time order: per speaker the frames where that speaker
        clearly speaks alone, boosted so that each speaker keeps a share; silence fills the rest."""
        size = self.setup.cache
        share = size // SPEAKERS - SILENCE_FRAMES_PER_SPEAKER
        scores = _scores(preds)
        scores = _disable_unclear(preds, scores, math.floor(share * MIN_POSITIVE_RATE))
        scores = _boost_best(scores, math.floor(share * STRONG_BOOST_RATE), 2.0)
        scores = _boost_best(scores, math.floor(share * WEAK_BOOST_RATE), 1.0)
        frames = len(scores)
        # places for the silence profile: they win over every real frame
        scores = np.concatenate([scores, np.full((SILENCE_FRAMES_PER_SPEAKER, SPEAKERS), np.inf, np.float32)])
        flat = scores.T.reshape(-1)  # speaker-major, as NeMo flattens it
        best = np.argpartition(-flat, size - 1)[:size]
        best = np.sort(np.where(np.isneginf(flat[best]), np.iinfo(np.int64).max, best))
        disabled = best == np.iinfo(np.int64).max
        rows = np.where(disabled, 0, best % len(scores))
        disabled |= rows >= frames
        rows[disabled] = 0
        kept = embeddings[rows]
        kept[disabled] = self.silence
        kept_preds = preds[rows]
        kept_preds[disabled] = 0
        return kept, kept_preds


def _scores(preds: np.ndarray) -> np.ndarray:
    """How well each frame characterises each speaker: log-odds of that speaker against the others."""
    log_p = np.log(np.maximum(preds, SCORE_FLOOR))
    log_not = np.log(np.maximum(1.0 - preds, SCORE_FLOOR))
    return (log_p - log_not + log_not.sum(axis=1, keepdims=True) - math.log(0.5)).astype(np.float32)


def _disable_unclear(preds: np.ndarray, scores: np.ndarray, enough: int) -> np.ndarray:
    """Frames where a speaker is silent never represent them; nor do unclear ones, once there are enough clear."""
    speaking = preds > 0.5
    scores = np.where(speaking, scores, -np.inf).astype(np.float32)
    positive = scores > 0
    plenty = positive.sum(axis=0, keepdims=True) >= enough
    return np.where(~positive & speaking & plenty, -np.inf, scores).astype(np.float32)


def _boost_best(scores: np.ndarray, count: int, factor: float) -> np.ndarray:
    """Each speaker's `count` best frames gain `factor` x log 2."""
    if count <= 0:
        return scores
    count = min(count, len(scores))
    best = np.argpartition(-scores, count - 1, axis=0)[:count]  # [count, speakers]
    scores = scores.copy()
    columns = np.broadcast_to(np.arange(SPEAKERS), best.shape)
    scores[best, columns] -= np.float32(factor * math.log(0.5))  # -inf stays -inf
    return scores
