"""The scripted Sortformer graph keeps its script: positions from the fed-back embeddings,
predictions from the plan, zeros past the lengths, each batch row on its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from models_app.tests.sortformer_graphs import FILE_NAME, plan_from_turns, write_sortformer

LEFT = 3  # model frames of left context in each chunk
# speaker 0, then 1, then 0 and 1 together, then 0 again: frames 0-19, 20-39, 40-49, 50-69
TURNS = [(0.0, 1.6, 0), (1.6, 4.0, 1), (3.2, 4.0, 0), (4.0, 5.6, 0)]
PLAN = plan_from_turns(TURNS, 5.6)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> ort.InferenceSession:
    path = write_sortformer(tmp_path_factory.mktemp("diarizer"), PLAN, LEFT)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def state(positions: list[float], rows: int | None = None, garbage: float = 0.0) -> np.ndarray:
    """[1, rows, 512] embeddings whose channel 0 holds `positions`; later rows hold `garbage`."""
    rows = len(positions) if rows is None else rows
    embs = np.full((1, rows, 512), garbage, np.float32)
    embs[0, : len(positions)] = 0
    embs[0, : len(positions), 0] = positions
    return embs


def feeds(
    frames: int,
    cache: np.ndarray | None = None,
    fifo: np.ndarray | None = None,
    chunk_lengths: list[int] | None = None,
    cache_lengths: list[int] | None = None,
    fifo_lengths: list[int] | None = None,
    chunk: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Inputs for one batch row (or as many as the arrays given have); lengths default to full."""
    chunk = np.zeros((1, frames, 128), np.float32) if chunk is None else chunk
    batch = len(chunk)
    cache = np.zeros((batch, 0, 512), np.float32) if cache is None else cache
    fifo = np.zeros((batch, 0, 512), np.float32) if fifo is None else fifo
    return {
        "chunk": chunk,
        "chunk_lengths": np.array(chunk_lengths or [chunk.shape[1]] * batch, np.int64),
        "spkcache": cache,
        "spkcache_lengths": np.array(cache_lengths or [cache.shape[1]] * batch, np.int64),
        "fifo": fifo,
        "fifo_lengths": np.array(fifo_lengths or [fifo.shape[1]] * batch, np.int64),
    }


def run(session: ort.InferenceSession, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    names = ["spkcache_fifo_chunk_preds", "chunk_pre_encode_embs", "chunk_pre_encode_lengths"]
    preds, embs, lengths = session.run(names, inputs)
    return preds, embs, lengths


def positions(embs: np.ndarray) -> list[int]:
    return [int(p) for p in embs[0, :, 0]]


def test_the_plan_has_one_row_per_80_ms_and_marks_frames_whose_centre_is_in_a_turn() -> None:
    assert plan_from_turns([], 0.56).shape == (7, 4)  # not 8 from 0.56 / 0.08 = 7.000000000000001
    assert plan_from_turns([], 0.57).shape == (8, 4)
    plan = plan_from_turns([(0.05, 0.15, 2), (0.1, 0.25, 3)], 0.4, active=0.9, idle=0.1)
    assert plan.dtype == np.float32
    np.testing.assert_allclose(plan[:, 2], [0.1, 0.9, 0.1, 0.1, 0.1])  # centres 0.04, 0.12, 0.20, ...
    np.testing.assert_allclose(plan[:, 3], [0.1, 0.9, 0.9, 0.1, 0.1])
    np.testing.assert_allclose(plan[:, :2], 0.1)


def test_the_file_has_the_published_name(tmp_path: Path) -> None:
    path = write_sortformer(tmp_path / "models", PLAN, LEFT)
    assert path == tmp_path / "models" / FILE_NAME
    assert path.is_file()


def test_the_graph_has_the_published_inputs_and_outputs(session: ort.InferenceSession) -> None:
    inputs = {i.name: (i.type, len(i.shape), i.shape[-1]) for i in session.get_inputs()}
    assert inputs == {
        "chunk": ("tensor(float)", 3, 128),
        "chunk_lengths": ("tensor(int64)", 1, "batch"),
        "spkcache": ("tensor(float)", 3, 512),
        "spkcache_lengths": ("tensor(int64)", 1, "batch"),
        "fifo": ("tensor(float)", 3, 512),
        "fifo_lengths": ("tensor(int64)", 1, "batch"),
    }
    outputs = {o.name: (o.type, len(o.shape)) for o in session.get_outputs()}
    assert outputs == {
        "spkcache_fifo_chunk_preds": ("tensor(float)", 3),
        "chunk_pre_encode_embs": ("tensor(float)", 3),
        "chunk_pre_encode_lengths": ("tensor(int64)", 1),
    }
    assert all(isinstance(d, str) for i in session.get_inputs() for d in i.shape[:2])


@pytest.mark.parametrize(("frames", "encoded"), [(1, 1), (8, 1), (13, 2), (16, 2), (124, 16)])
def test_outputs_have_one_row_per_8_input_frames_rounded_up(session, frames: int, encoded: int) -> None:
    preds, embs, lengths = run(session, feeds(frames, cache=state([0, 1, 2]), fifo=state([3, 4])))
    assert preds.shape == (1, 3 + 2 + encoded, 4)
    assert embs.shape == (1, encoded, 512)
    assert lengths.tolist() == [encoded]


def test_the_stream_starts_at_position_0_without_left_context(session) -> None:
    _, embs, _ = run(session, feeds(40))
    assert positions(embs) == [0, 1, 2, 3, 4]


def test_a_fed_back_fifo_moves_the_chunk_on_and_the_left_context_is_subtracted(session) -> None:
    _, first, _ = run(session, feeds(48))
    assert positions(first) == [0, 1, 2, 3, 4, 5]
    _, second, _ = run(session, feeds(40, fifo=first))
    assert positions(second) == [6 - LEFT, 7 - LEFT, 8 - LEFT, 9 - LEFT, 10 - LEFT]


def test_the_left_context_is_shorter_at_the_streams_start(session) -> None:
    _, embs, _ = run(session, feeds(32, fifo=state([0, 1])))
    assert positions(embs) == [0, 1, 2, 3]  # base 2: only 2 frames seen, not LEFT


def test_the_largest_stored_position_wins_whatever_the_row_order(session) -> None:
    _, embs, _ = run(session, feeds(8, cache=state([17, 2, 15])))
    assert positions(embs) == [18 - LEFT]
    _, embs, _ = run(session, feeds(8, cache=state([20, 9]), fifo=state([10, 11])))
    assert positions(embs) == [21 - LEFT]  # the cache, not the FIFO's last row


def test_rows_past_the_lengths_are_ignored(session) -> None:
    cache, fifo = state([4, 5], rows=4, garbage=60.0), state([6], rows=3, garbage=50.0)
    preds, embs, _ = run(session, feeds(8, cache=cache, fifo=fifo, cache_lengths=[2], fifo_lengths=[1]))
    assert positions(embs) == [7 - LEFT]
    np.testing.assert_array_equal(preds[0, [0, 1, 4]], PLAN[[4, 5, 6]])
    np.testing.assert_array_equal(preds[0, [2, 3, 5, 6]], 0)


def test_predictions_follow_the_plan_at_the_stored_and_chunk_positions(session) -> None:
    cache, fifo = state([10, 30]), state([45, 60])
    preds, embs, _ = run(session, feeds(24, cache=cache, fifo=fifo))
    assert positions(embs) == [61 - LEFT, 62 - LEFT, 63 - LEFT]
    np.testing.assert_array_equal(preds[0], PLAN[[10, 30, 45, 60, 58, 59, 60]])
    speakers = [np.flatnonzero(row > 0.5).tolist() for row in preds[0, :4]]
    assert speakers == [[0], [1], [0, 1], [0]]


def test_positions_outside_the_plan_read_its_first_and_last_rows(session) -> None:
    preds, _, _ = run(session, feeds(8, cache=state([-30.0]), fifo=state([500.0])))
    np.testing.assert_array_equal(preds[0], PLAN[[0, len(PLAN) - 1, len(PLAN) - 1]])


def test_a_caller_that_feeds_embeddings_back_gets_the_whole_plan(session) -> None:
    """A plain streaming loop: 6 new frames a chunk after LEFT seen ones, FIFO of 8, then cache."""
    cache, fifo = state([]), state([])
    got: list[np.ndarray] = []
    done = 0
    while done < len(PLAN):
        left, new = min(LEFT, done), min(6, len(PLAN) - done)
        preds, embs, _ = run(session, feeds((left + new) * 8, cache=cache, fifo=fifo))
        got.append(preds[0, -new:])
        fifo = np.concatenate([fifo, embs[:, left:]], axis=1)
        cache, fifo = np.concatenate([cache, fifo[:, :-8]], axis=1), fifo[:, -8:]
        done += new
    np.testing.assert_array_equal(np.concatenate(got), PLAN)
    assert positions(cache) + positions(fifo) == list(range(len(PLAN)))


def test_channel_1_is_the_mean_feature_of_each_rows_input_frames(session) -> None:
    chunk = np.repeat(np.arange(13, dtype=np.float32), 128).reshape(1, 13, 128)
    chunk[0, :, 0] += 128.0  # one bin raised by 128 raises the frame's mean by 1
    _, embs, _ = run(session, feeds(13, chunk=chunk))
    np.testing.assert_allclose(embs[0, :, 1], [3.5 + 1, 10.0 + 1])  # frames 0-7, then the 5 frames 8-12
    np.testing.assert_array_equal(embs[0, :, 2:], 0)


def test_rows_past_the_chunk_length_are_zero(session) -> None:
    chunk = np.ones((1, 32, 128), np.float32)
    preds, embs, lengths = run(session, feeds(32, fifo=state([20]), chunk=chunk, chunk_lengths=[10]))
    assert lengths.tolist() == [2]  # ceil(10 / 8)
    assert positions(embs) == [21 - LEFT, 22 - LEFT, 0, 0]
    np.testing.assert_array_equal(embs[0, 2:], 0)
    assert embs[0, 1, 1] == 1.0
    np.testing.assert_array_equal(preds[0, 1:3], PLAN[[18, 19]])
    np.testing.assert_array_equal(preds[0, 3:], 0)


def test_each_batch_row_has_its_own_state_and_lengths(session) -> None:
    chunk = np.stack([np.full((24, 128), 2.0, np.float32), np.full((24, 128), 5.0, np.float32)])
    fifo = np.concatenate([state([], rows=3, garbage=9.0), state([40, 41], rows=3, garbage=9.0)])
    cache = np.concatenate([state([30], rows=2), state([], rows=2, garbage=7.0)])
    inputs = feeds(
        24, chunk=chunk, cache=cache, fifo=fifo, chunk_lengths=[24, 9], cache_lengths=[1, 0], fifo_lengths=[0, 2]
    )
    preds, embs, lengths = run(session, inputs)
    assert lengths.tolist() == [3, 2]
    assert embs[0, :, 0].tolist() == [31 - LEFT, 32 - LEFT, 33 - LEFT]
    assert embs[1, :, 0].tolist() == [42 - LEFT, 43 - LEFT, 0]
    assert embs[:, :, 1].tolist() == [[2, 2, 2], [5, 5, 0]]
    zero = np.zeros((1, 4), np.float32)
    # [cache 2 rows, FIFO 3 rows, chunk 3 rows]
    np.testing.assert_array_equal(preds[0], np.concatenate([PLAN[[30]], zero, zero, zero, zero, PLAN[28:31]]))
    np.testing.assert_array_equal(preds[1], np.concatenate([zero, zero, PLAN[[40, 41]], zero, PLAN[39:41], zero]))
