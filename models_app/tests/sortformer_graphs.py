"""A scripted ONNX graph of NVIDIA's streaming Sortformer diarizer (4 speakers), for tests.

It has the published names, dtypes and ranks of `diar_streaming_sortformer_4spk-v2.onnx`
and predicts, for every 80 ms frame, the speaker activities planned for that frame's
position in the stream. The graph writes each frame's absolute position into channel 0
of its embedding, so a caller that feeds the embeddings back as FIFO and cache tells the
graph where the stream is: only a correct streaming update gets the planned predictions.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from models_app.tests.onnx_graphs import FLOAT, INT64, SUBSAMPLING, Graph, save, tensor

FILE_NAME = "diar_streaming_sortformer_4spk-v2.onnx"
SPEAKERS = 4
MELS = 128
WIDTH = 512  # the embedding width of the FIFO and cache
FRAMES_PER_SEC = 12.5  # one model frame per 80 ms; 12.5 is exact in binary, 0.08 is not


def plan_from_turns(
    turns: list[tuple[float, float, int]], secs: float, active: float = 0.95, idle: float = 0.02
) -> np.ndarray:
    """[frames, 4] float32 activities, frames = ceil(secs / 0.08): `active` where a frame's
    centre lies in a turn `(start_secs, end_secs, speaker)` of that speaker, else `idle`."""
    frames = math.ceil(round(secs * FRAMES_PER_SEC, 6))  # the rounding drops float noise (0.56 s is 7 frames, not 8)
    centres = (np.arange(frames) + 0.5) / FRAMES_PER_SEC
    plan = np.full((frames, SPEAKERS), idle, np.float32)
    for start, end, speaker in turns:
        plan[(centres >= start) & (centres < end), speaker] = active
    return plan


def _valid_rows(g: Graph, rows: str, lengths: str) -> str:
    """[B, N] bool: row n < lengths[b], for a [B, N, *] input `rows`."""
    count = g.op("Squeeze", g.op("Gather", g.op("Shape", rows), g.ints(1)))
    steps = g.op("Range", g.const(0, np.int64), count, g.const(1, np.int64))
    return g.op("Less", g.op("Unsqueeze", steps, g.ints(0)), g.op("Unsqueeze", lengths, g.ints(1)))


def _planned(g: Graph, plan: str, last: int, positions: str, valid: str) -> str:
    """[B, N, 4]: the plan's row at each int64 position [B, N] (clipped), 0 where not valid."""
    index = g.op("Min", g.op("Max", positions, g.const(0, np.int64)), g.const(last, np.int64))
    rows = g.op("Gather", plan, index, axis=0)
    return g.op("Mul", rows, g.op("Unsqueeze", g.op("Cast", valid, to=FLOAT), g.ints(2)))


def scripted_sortformer(path: Path, plan: np.ndarray, left_context: int) -> Path:
    """Write the scripted diarizer for `plan` [frames, 4] to `path`.

    base[b] = 1 + the largest channel 0 over the valid cache and FIFO rows (0 when both are
    empty); chunk row j is at position base - min(left_context, base) + j. Embeddings
    [B, C, 512] hold the position in channel 0 and the mean feature of the row's input
    frames in channel 1; predictions [B, S+F+C, 4] are the plan at the cache's and FIFO's
    stored positions, then at the chunk's, and 0 on rows past a length.
    """
    g = Graph()
    plan_name = g.const(np.asarray(plan, np.float32))
    last = len(plan) - 1

    cache_pos = g.op("Gather", "spkcache", g.const(0, np.int64), axis=2)  # [B, S]
    fifo_pos = g.op("Gather", "fifo", g.const(0, np.int64), axis=2)  # [B, F]
    cache_valid = _valid_rows(g, "spkcache", "spkcache_lengths")
    fifo_valid = _valid_rows(g, "fifo", "fifo_lengths")

    # base: invalid rows count as -1, and a column of -1 keeps the max defined when S + F = 0
    none = g.const(-1.0)
    batch = g.op("Gather", g.op("Shape", "chunk"), g.ints(0))
    floor = g.op("Expand", g.const(np.full((1, 1), -1.0)), g.op("Concat", batch, g.ints(1), axis=0))
    seen = g.op(
        "Concat", g.op("Where", cache_valid, cache_pos, none), g.op("Where", fifo_valid, fifo_pos, none), floor, axis=1
    )
    newest = g.op("Cast", g.op("Round", g.op("ReduceMax", seen, axes=[1], keepdims=0)), to=INT64)
    base = g.op("Add", newest, g.const(1, np.int64))  # [B]
    start = g.op("Sub", base, g.op("Min", base, g.const(left_context, np.int64)))

    eight, seven = g.const(SUBSAMPLING, np.int64), g.const(SUBSAMPLING - 1, np.int64)
    frames = g.op("Gather", g.op("Shape", "chunk"), g.ints(1))
    encoded = g.op("Squeeze", g.op("Div", g.op("Add", frames, seven), eight))  # C = ceil(T / 8)
    lengths = g.op("Div", g.op("Add", "chunk_lengths", seven), eight, out="chunk_pre_encode_lengths")
    steps = g.op("Range", g.const(0, np.int64), encoded, g.const(1, np.int64))
    chunk_pos = g.op("Add", g.op("Unsqueeze", start, g.ints(1)), g.op("Unsqueeze", steps, g.ints(0)))  # [B, C]
    chunk_valid = g.op("Less", g.op("Unsqueeze", steps, g.ints(0)), g.op("Unsqueeze", lengths, g.ints(1)))

    # channel 1: a mean over bins, then over each row's input frames (the last row may have fewer than 8)
    loudness = g.op("Transpose", g.op("ReduceMean", "chunk", axes=[2], keepdims=1), perm=[0, 2, 1])  # [B, 1, T]
    pooled = g.op("AveragePool", loudness, kernel_shape=[SUBSAMPLING], strides=[SUBSAMPLING], ceil_mode=1)
    channels = np.zeros((2, 1, 1, WIDTH), np.float32)
    channels[0, ..., 0] = channels[1, ..., 1] = 1
    position = g.op("Mul", g.op("Unsqueeze", g.op("Cast", chunk_pos, to=FLOAT), g.ints(2)), g.const(channels[0]))
    mean = g.op("Mul", g.op("Transpose", pooled, perm=[0, 2, 1]), g.const(channels[1]))
    keep = g.op("Unsqueeze", g.op("Cast", chunk_valid, to=FLOAT), g.ints(2))
    g.op("Mul", g.op("Add", position, mean), keep, out="chunk_pre_encode_embs")

    stored = [g.op("Cast", g.op("Round", pos), to=INT64) for pos in (cache_pos, fifo_pos)]
    g.op(
        "Concat",
        _planned(g, plan_name, last, stored[0], cache_valid),
        _planned(g, plan_name, last, stored[1], fifo_valid),
        _planned(g, plan_name, last, chunk_pos, chunk_valid),
        axis=1,
        out="spkcache_fifo_chunk_preds",
    )
    model = g.model(
        [
            tensor("chunk", FLOAT, ["batch", "chunk_frames", MELS]),
            tensor("chunk_lengths", INT64, ["batch"]),
            tensor("spkcache", FLOAT, ["batch", "spkcache_frames", WIDTH]),
            tensor("spkcache_lengths", INT64, ["batch"]),
            tensor("fifo", FLOAT, ["batch", "fifo_frames", WIDTH]),
            tensor("fifo_lengths", INT64, ["batch"]),
        ],
        [
            tensor("spkcache_fifo_chunk_preds", FLOAT, ["batch", "all_frames", SPEAKERS]),
            tensor("chunk_pre_encode_embs", FLOAT, ["batch", "encoded_frames", WIDTH]),
            tensor("chunk_pre_encode_lengths", INT64, ["batch"]),
        ],
    )
    return save(model, path)


def write_sortformer(directory: Path, plan: np.ndarray, left_context: int) -> Path:
    """The scripted diarizer under its published file name in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    return scripted_sortformer(directory / FILE_NAME, plan, left_context)
