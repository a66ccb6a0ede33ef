"""The streaming diarizer on scripted Sortformer graphs: its state fed back, its features, its timeline,
and the speaker each word gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media_app.audio import read_audio
from models_app import diarization
from models_app.diarization import Diarizer, SpeakerStream, Timeline, runs
from models_app.engines.base import ModelFilesError
from models_app.engines.features import log_mel
from models_app.engines.sortformer import (
    EMBEDDING,
    FILE_NAME,
    FRAME_SECS,
    SETUPS,
    SortformerEngine,
    SpeakerState,
    missing_files,
)
from models_app.streaming import SAMPLE_RATE, Word
from models_app.tests.conftest import DEMO
from models_app.tests.onnx_graphs import FLOAT, Graph, save, tensor
from models_app.tests.sortformer_graphs import plan_from_turns, write_sortformer

LOW = SETUPS["low"]
# speaker 0, then 1, then both at once, then 0 again; long enough that the FIFO spills and the cache compresses
TURNS = [(0.0, 20.0, 0), (20.0, 40.0, 1), (36.0, 44.0, 0), (44.0, 70.0, 0)]
SECS = 70.0


class Recorded(SortformerEngine):
    """The engine, keeping what each step was given."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[tuple[int, int, int]] = []  # (chunk frames, cache rows, fifo rows)
        self.positions: list[np.ndarray] = []  # the positions of the cache and FIFO rows fed back

    def step(self, chunk: np.ndarray, cache: np.ndarray, fifo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append((len(chunk), len(cache), len(fifo)))
        self.positions.append(np.concatenate([cache[:, 0], fifo[:, 0]]))
        return super().step(chunk, cache, fifo)


def engine_for(tmp_path: Path, plan: np.ndarray, setup_left: int = LOW.left) -> Recorded:
    return Recorded(write_sortformer(tmp_path / "sortformer", plan, setup_left))


def stepped(engine: SortformerEngine, audio: np.ndarray, piece: int = 1600, setup: str = "low") -> SpeakerStream:
    """`audio` pushed in pieces and stepped on this thread (no diarizer thread), then finished."""
    stream = SpeakerStream(Diarizer(engine, setup))
    for start in range(0, len(audio), piece):
        stream.push(audio[start : start + piece])
        while stream.due() and not stream._ended:
            stream.step(engine)
    stream._ended = True
    while stream.due():
        stream.step(engine)
    return stream


def noise(secs: float, extra: int = 0) -> np.ndarray:
    return (np.random.default_rng(1).standard_normal(int(secs * SAMPLE_RATE) + extra) * 0.1).astype(np.float32)


def test_every_frame_gets_the_activity_planned_for_it_through_fifo_spills_and_cache_compressions(tmp_path):
    plan = plan_from_turns(TURNS, SECS)
    engine = engine_for(tmp_path, plan)
    stream = stepped(engine, noise(SECS))

    # the scripted graph answers the plan at the position the fed-back state implies: any slip in
    # the FIFO, the cache or the left context would shift the rows
    np.testing.assert_array_equal(stream.timeline.rows, plan)
    first, *rest = engine.calls
    assert first == ((LOW.chunk + LOW.right) * 8, 0, 0)  # no left context before the start
    steady = [call for call in rest[:-2] if call[1] == LOW.cache]
    assert steady and {chunk for chunk, _, _ in steady} == {(LOW.left + LOW.chunk + LOW.right) * 8}
    assert max(cache for _, cache, _ in engine.calls) == LOW.cache
    assert max(fifo for _, _, fifo in engine.calls) <= LOW.fifo
    # the FIFO holds the newest frames, in order, just before the chunk
    for (_, cache, fifo), positions, step in zip(engine.calls, engine.positions, range(len(engine.calls)), strict=True):
        queued = positions[cache:]
        np.testing.assert_array_equal(queued, np.arange(step * LOW.chunk - fifo, step * LOW.chunk))


def test_the_compressed_cache_keeps_each_speakers_clearest_frames_in_time_order(tmp_path):
    plan = plan_from_turns(TURNS, SECS)
    stream = stepped(engine_for(tmp_path, plan), noise(SECS))
    cache, preds = stream.state.cache, stream.state.cache_preds
    assert cache.shape == (LOW.cache, EMBEDDING) and preds is not None

    real = preds.sum(axis=1) > 0  # the silence profile's rows have no activity
    positions = cache[real, 0].astype(int)
    speakers = preds[real].argmax(axis=1)
    assert set(speakers.tolist()) == {0, 1}  # both speakers keep frames, though 0 spoke far longer
    for speaker in (0, 1):
        mine = positions[speakers == speaker]
        assert list(mine) == sorted(mine)
        assert np.all(plan[mine, speaker] == 0.95)
    # the overlap (36-40 s) characterises nobody alone: none of it is kept
    assert not np.any((positions >= round(36 / FRAME_SECS)) & (positions < round(40 / FRAME_SECS)))


def test_silence_leaves_a_profile_that_fills_the_cache_where_there_is_too_little_speech(tmp_path):
    plan = plan_from_turns([(0.0, 3.0, 0)], 40.0)  # 3 s of speech, then silence
    stream = stepped(engine_for(tmp_path, plan), noise(40.0))
    state = stream.state
    assert state.silent_frames > 0
    silent_rows = state.cache_preds is not None and (state.cache_preds.sum(axis=1) == 0)
    assert np.any(silent_rows)
    np.testing.assert_allclose(state.cache[silent_rows], np.broadcast_to(state.silence, state.cache[silent_rows].shape))


def test_features_are_computed_once_per_frame_and_equal_the_whole_recordings(tmp_path):
    audio = read_audio(DEMO)[: 12 * SAMPLE_RATE + 77]
    plan = plan_from_turns([(0.0, 12.0, 0)], 13.0)
    stream = stepped(engine_for(tmp_path, plan), audio, piece=1234)
    whole, _ = log_mel(audio, n_mels=128, normalize=False)
    frames = whole[0].T  # [T, 128]
    fifo = stream.state.fifo  # channel 1: the mean of each row's 8 feature frames
    for position, mean in zip(fifo[:, 0].astype(int), fifo[:, 1], strict=True):
        assert mean == pytest.approx(frames[position * 8 : position * 8 + 8].mean(), abs=1e-5)
    assert stream.timeline.count == int(np.ceil(len(audio) // 160 / 8))  # the odd tail is diarized too


def test_the_high_latency_setup_streams_the_same_activity_in_ten_second_chunks(tmp_path):
    plan = plan_from_turns(TURNS, SECS)
    engine = engine_for(tmp_path, plan, SETUPS["high"].left)
    stream = stepped(engine, noise(SECS), setup="high")
    np.testing.assert_array_equal(stream.timeline.rows, plan)
    assert len(engine.calls) == int(np.ceil(len(plan) / SETUPS["high"].chunk))


def test_a_step_waits_for_its_look_ahead_and_keeps_it_as_provisional(tmp_path):
    plan = plan_from_turns([(0.0, 1.0, 0), (1.0, 5.0, 1)], 5.0)
    engine = engine_for(tmp_path, plan)
    stream = SpeakerStream(Diarizer(engine))
    needed = ((LOW.chunk + LOW.right) * 8 - 1) * 160 + 200  # the last frame's window, of the chunk's look-ahead
    stream.push(noise(5.0)[: needed - 1])
    assert not stream.due()
    stream.push(noise(5.0)[needed - 1 : needed])
    assert stream.due()
    stream.step(engine)
    assert stream.timeline.count == LOW.chunk  # 0.48 s known...
    assert len(stream.timeline.provisional) == LOW.right  # ...and 0.56 s guessed
    assert stream.timeline.speaker(0.8, 0.95) is None  # not confirmed yet
    assert stream.timeline.speaker(0.8, 0.95, provisional=True) == 0
    assert stream.timeline.speaker(1.0, 1.04, provisional=True) == 1


def test_the_diarizer_thread_steps_every_stream_and_finish_waits_for_the_last(tmp_path):
    plan = plan_from_turns(TURNS, SECS)
    diarizer = Diarizer(engine_for(tmp_path, plan), skip_after_secs=float("inf"))  # audio comes faster than live
    streams = [diarizer.stream() for _ in range(3)]
    audio = noise(SECS)
    for start in range(0, len(audio), 16000):
        for stream in streams:
            stream.push(audio[start : start + 16000])
    for stream in streams:
        stream.finish(timeout=30)
        assert stream.error is None and stream.covered_secs == float("inf")
        np.testing.assert_array_equal(stream.timeline.rows, plan)
        stream.close()


def test_a_stream_that_falls_far_behind_skips_to_the_newest_audio_and_goes_on(tmp_path):
    plan = plan_from_turns([(0.0, 40.0, 0)], 40.0)
    engine = engine_for(tmp_path, plan)
    stream = SpeakerStream(Diarizer(engine))
    audio = noise(40.0)
    stream.push(audio[: 30 * SAMPLE_RATE])  # 30 s arrive while nothing could be stepped
    stream.step(engine)
    assert stream.skipped_secs == pytest.approx(30.0 - LOW.latency_secs, abs=0.15)  # to its look-ahead from the newest
    assert len(engine.calls) == 1 and engine.calls[0][0] == (LOW.left + LOW.chunk + LOW.right) * 8
    stream.push(audio[30 * SAMPLE_RATE :])
    stream._ended = True
    while stream.due():
        stream.step(engine)
    rows = stream.timeline.rows
    assert len(rows) == len(plan)  # every frame has a row...
    skipped = round(stream.skipped_secs / FRAME_SECS)
    assert not rows[:skipped].any()  # ...the skipped ones unknown (nobody speaks there)...
    assert rows[skipped:, 0].min() == pytest.approx(0.95)  # ...and the speaker carried on after the gap
    whole, _ = log_mel(audio, n_mels=128, normalize=False)
    newest = stream.state.fifo[-100:, 1]  # after the gap: the last 100 frames (the graph's channel 0 counts on
    for frame, mean in zip(range(stream._next - 100, stream._next), newest, strict=True):  # from before it)
        assert mean == pytest.approx(whole[0].T[frame * 8 : frame * 8 + 8].mean(), abs=1e-5)  # features still right


def test_a_failing_step_fails_its_stream_only(tmp_path, caplog):
    plan = plan_from_turns(TURNS, 10.0)
    engine = engine_for(tmp_path, plan)
    diarizer = Diarizer(engine, skip_after_secs=float("inf"))
    healthy, broken = diarizer.stream(), diarizer.stream()
    broken.state.fifo = np.zeros((3, 7), np.float32)  # not the model's width: its next step fails
    for stream in (healthy, broken):
        stream.push(noise(10.0))
        stream.finish(timeout=30)
    assert broken.error is not None and "the diarizer failed" in broken.error
    assert broken.covered_secs == float("inf")  # its words wait no longer, and get no speaker
    assert healthy.error is None
    np.testing.assert_array_equal(healthy.timeline.rows, plan)


# --- the speaker of a word ------------------------------------------------------------------------


def timeline_of(plan: np.ndarray) -> Timeline:
    timeline = Timeline()
    timeline.extend(plan, np.zeros((0, 4), np.float32))
    return timeline


def test_a_word_gets_the_speaker_most_active_over_its_span():
    timeline = timeline_of(plan_from_turns([(0.0, 2.0, 0), (2.0, 4.0, 1), (3.0, 5.0, 2)], 6.0))
    assert timeline.speaker(0.5, 0.9) == 0
    assert timeline.speaker(1.8, 2.5) == 1  # across the change: most of it is speaker 1's
    assert timeline.speaker(1.5, 2.1) == 0  # most of it is speaker 0's
    assert timeline.speaker(3.2, 3.6) in (1, 2)  # an overlap: one of the two who speak
    assert timeline.speaker(4.2, 4.6) == 2
    assert timeline.speaker(5.5, 5.9) is None  # nobody speaks
    assert timeline.speaker(5.0, 5.1) == 2  # a word just after the end of a turn: widened, it is found


def test_in_an_overlap_the_louder_voice_wins():
    plan = plan_from_turns([(0.0, 2.0, 0)], 2.0)
    plan[:, 1] = 0.6
    plan[10:, 0] = 0.4
    timeline = timeline_of(plan)
    assert timeline.speaker(0.1, 0.7) == 0
    assert timeline.speaker(1.0, 1.5) == 1


def test_a_short_reply_stretched_over_the_silence_after_it_is_its_speakers():
    # Whisper times Nell's "Yes." (1.58-1.83 s) as 1.60-2.60 s, over the silence and into Nagg's next turn
    timeline = timeline_of(plan_from_turns([(0.1, 0.9, 0), (1.58, 1.83, 1), (2.47, 3.28, 0)], 4.0))
    assert timeline.speaker(1.60, 2.60) == 1  # only the frames where someone speaks count
    # "Laughing." (19.68-20.48 s): Nell's turn ends at 19.78, Nagg's starts at 20.43: one frame each
    timeline = timeline_of(plan_from_turns([(19.46, 19.78, 1), (20.43, 21.89, 0)], 22.0))
    assert timeline.speaker(19.68, 20.48) == 1  # the start is the surer of a word's times


def test_frames_are_found_exactly_at_multiples_of_80_ms():
    assert [diarization.frame_at(n * 0.08) for n in range(400)] == list(range(400))
    timeline = timeline_of(plan_from_turns([(0.0, 2.32, 0), (2.32, 3.0, 1)], 3.0))
    assert timeline.speaker(2.32, 2.40) == 1


def test_words_nobody_is_heard_on_keep_the_speaker_before_them():
    timeline = timeline_of(plan_from_turns([(0.0, 1.0, 1), (3.0, 4.0, 0)], 4.0))
    words = [Word(" one", 0.2, 0.5), Word(" two", 1.6, 1.9), Word(" three", 3.2, 3.5)]
    assert timeline.speakers(words) == [1, 1, 0]
    assert timeline.speakers([Word(" lost", 1.6, 1.9)], previous=None) == [None]


def test_runs_group_consecutive_words_of_one_speaker():
    words = [Word(f" w{i}", i, i + 0.5) for i in range(5)]
    assert runs(words, [0, 0, 1, 1, 0]) == [(words[:2], 0), (words[2:4], 1), (words[4:], 0)]


# --- the file ---------------------------------------------------------------------------------------


def test_a_missing_file_says_how_to_get_it(tmp_path):
    reason = missing_files(tmp_path / "nowhere")
    assert reason is not None and FILE_NAME in reason and "download_model sortformer" in reason
    assert "DIAR_MODEL_PATH is not set" in (missing_files("") or "")
    write_sortformer(tmp_path / "here", plan_from_turns([], 1.0), 1)
    assert missing_files(tmp_path / "here") is None  # the directory that holds it
    assert missing_files(tmp_path / "here" / FILE_NAME) is None  # or the file itself


def test_a_file_that_is_not_the_export_is_refused_with_what_it_lacks(tmp_path):
    g = Graph()
    g.op("Identity", "audio", out="out")
    path = save(g.model([tensor("audio", FLOAT, ["B", "T"])], [tensor("out", FLOAT, ["B", "T"])]), tmp_path / FILE_NAME)
    with pytest.raises(ModelFilesError, match="lacks the input"):
        SortformerEngine(path)


def test_an_unloadable_file_makes_diarization_unavailable_with_the_reason(tmp_path, settings):
    (tmp_path / FILE_NAME).write_bytes(b"not onnx")
    settings.DIAR_MODEL_PATH = str(tmp_path)
    assert diarization.unavailable_reason() is None  # present: it looks installed until it is loaded
    assert diarization.create_stream() is None
    reason = diarization.unavailable_reason()
    assert reason is not None and "ONNX Runtime cannot load" in reason
    assert diarization.describe()["available"] is False


def test_state_update_moves_the_oldest_fifo_frames_to_the_cache():
    setup = SETUPS["low"]
    state = SpeakerState(setup)
    state.fifo = np.arange(setup.fifo, dtype=np.float32)[:, None].repeat(EMBEDDING, axis=1)
    state.fifo_preds = np.full((setup.fifo, 4), 0.5, np.float32)
    chunk = np.full((setup.left + setup.chunk + setup.right, EMBEDDING), 1000.0, np.float32)
    preds = np.full((setup.fifo + len(chunk), 4), 0.9, np.float32)
    rows = state.update(preds, chunk, setup.left, setup.chunk)
    assert rows.shape == (setup.chunk, 4)
    assert len(state.cache) == setup.update_period  # popped at once, not frame by frame
    np.testing.assert_array_equal(state.cache[:, 0], np.arange(setup.update_period))
    assert len(state.fifo) == setup.fifo + setup.chunk - setup.update_period
    np.testing.assert_array_equal(state.fifo[-setup.chunk :, 0], 1000.0)  # only the chunk's own rows joined
