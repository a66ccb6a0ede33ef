"""The pass scheduler: intake never waits for inference, the oldest unconfirmed audio goes
first, nobody starves, late passes drop partials, and admission follows what was measured.

The audio is real speech (so the VAD hears speech); the engine's words are scripted.
"""

from __future__ import annotations

import threading
import time

import pytest

from models_app import scheduler
from models_app.engines.base import Engine, PassRequest, PassResult
from models_app.policy import PRESETS, StreamingPolicy
from models_app.scheduler import PassScheduler
from models_app.streaming import Word

STEP = 1600  # 100 ms pushes, as a session's run feeds them


class Echo(Engine):
    """Says "word" over each whole second of its buffer; each call can be held, and is recorded."""

    max_batch = 8

    def __init__(self, max_batch: int = 8, secs_per_call: float = 0.0) -> None:
        self.max_batch = max_batch
        self.secs_per_call = secs_per_call
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[list[PassRequest]] = []

    @classmethod
    def missing_files(cls, location):
        return None

    def transcribe(self, requests):
        self.gate.wait(30)
        time.sleep(self.secs_per_call)
        self.batches.append(requests)
        return [
            PassResult([Word(f" w{i}", i + 0.1, i + 0.6, 0.9) for i in range(int(len(r.audio) / 16000))])
            for r in requests
        ]


def scheduled(runner: PassScheduler, preset: str = "balanced") -> StreamingPolicy:
    stream = StreamingPolicy(runner, PRESETS[preset], "en")
    stream.schedule()
    return stream


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_pushing_audio_never_waits_for_a_pass(demo_audio):
    engine = Echo()
    runner = PassScheduler(engine, "echo")
    stream = scheduled(runner)
    engine.gate.clear()  # every pass is held
    pushed = time.monotonic()
    for offset in range(0, 16000 * 5, STEP):
        stream.push_audio(demo_audio[offset : offset + STEP])
    took = time.monotonic() - pushed
    assert stream._in_flight  # a pass began and is held in the engine...
    assert not engine.batches  # ...and none has finished, yet all the audio was taken
    assert stream.timeline.total == 16000 * 5
    engine.gate.set()
    wait_for(lambda: stream.collect().finals or stream.passes > 1)
    assert took < 30  # (the held pass would have blocked the pushes for 30 s)
    stream.close()


def test_the_oldest_unconfirmed_audio_goes_first(demo_audio):
    engine = Echo(max_batch=1)
    runner = PassScheduler(engine, "echo")
    engine.gate.clear()
    holder = scheduled(runner)  # takes the one thread's first pass and holds it
    for offset in range(0, 16000 * 2, STEP):
        holder.push_audio(demo_audio[offset : offset + STEP])
    wait_for(lambda: holder._in_flight)
    young, old = scheduled(runner), scheduled(runner)
    for offset in range(0, 16000 * 4, STEP):
        old.push_audio(demo_audio[offset : offset + STEP])
    for offset in range(0, 16000 * 2, STEP):
        young.push_audio(demo_audio[offset : offset + STEP])
    assert old.due() > young.due() > 0
    engine.gate.set()
    wait_for(lambda: len(engine.batches) >= 3)
    lengths = [len(batch[0].audio) for batch in engine.batches[1:3]]
    assert lengths == [16000 * 4, 16000 * 2]  # after the holder's pass: the older, then the younger
    for stream in (holder, young, old):
        stream.close()


def test_an_overloaded_model_stretches_every_stream_alike_and_drops_their_partials(demo_audio):
    engine = Echo(max_batch=2, secs_per_call=0.3)  # one thread, two passes a call: about 6 passes a second
    runner = PassScheduler(engine, "echo")
    streams = [scheduled(runner) for _ in range(8)]  # they ask for 16 passes a second
    partials_after: list[list[str]] = [[] for _ in streams]
    stretched = [False for _ in streams]
    for offset in range(0, 16000 * 12, STEP):
        for k, stream in enumerate(streams):
            stream.push_audio(demo_audio[offset : offset + STEP])
            chunk = stream.collect()
            stretched[k] |= stream.stretched
            if chunk.partial is not None and stream.stretched:
                partials_after[k].append(chunk.partial.text)
        time.sleep(STEP / 16000 / 2)  # twice real time
    passes = [stream.passes for stream in streams]
    assert min(passes) >= max(3, max(passes) // 2)  # nobody starved
    assert all(stretched)
    assert all(text == "" for texts in partials_after for text in texts)  # only the partial's removal, if anything
    load = runner.load()
    assert load["streams"] == 8 and load["stretched"] > 0 and load["busy"] > 0.5
    for stream in streams:
        stream.close()


def test_finalize_waits_for_the_pass_in_flight_and_no_word_comes_twice(demo_audio):
    engine = Echo()
    runner = PassScheduler(engine, "echo")
    stream = scheduled(runner)
    engine.gate.clear()
    for offset in range(0, 16000 * 3, STEP):
        stream.push_audio(demo_audio[offset : offset + STEP])
    wait_for(lambda: stream._in_flight)
    finished = threading.Thread(target=lambda: setattr(stream, "last", stream.finalize()))
    finished.start()
    time.sleep(0.2)
    assert finished.is_alive()  # held behind the pass in flight
    engine.gate.set()
    finished.join(10)
    words = [w.text for segment in stream.last.finals for w in segment.words]
    assert stream.last.is_final and len(words) == len(set(words))
    assert runner.load()["streams"] == 0  # finalize took the stream off the scheduler


def test_a_failed_pass_reaches_its_stream_alone(demo_audio):
    class Failing(Echo):
        def transcribe(self, requests):
            raise RuntimeError("the model broke")

    runner = PassScheduler(Failing(max_batch=1), "failing")
    stream = scheduled(runner)
    for offset in range(0, 16000 * 2, STEP):
        stream.push_audio(demo_audio[offset : offset + STEP])
    wait_for(lambda: not stream._in_flight and stream.passes)
    with pytest.raises(RuntimeError, match="the model broke"):
        stream.collect()
    stream.close()


def test_admission_refuses_when_measured_lateness_would_pass_the_goal(monkeypatch):
    runner = PassScheduler(Echo(), "echo", goal_secs=2.5)
    assert runner.admission().admits  # nothing measured: nothing to refuse on

    class Stub:
        stretched = False
        now = 0.0

    runner._streams.update({Stub(), Stub()})
    now = time.monotonic()
    runner._late.extend((now, 1.0) for _ in range(scheduler.MIN_WORDS))
    assert runner.admission().admits
    runner._late.extend((now, 3.0) for _ in range(scheduler.MIN_WORDS * 2))
    refused = runner.admission()
    assert not refused.admits
    assert "at capacity" in refused.reason and "2 live sessions" in refused.reason and "3.0 s" in refused.reason
    monkeypatch.setattr(scheduler, "WINDOW_SECS", 0.001)
    time.sleep(0.01)
    assert runner.admission().admits  # what was measured is forgotten after the window
    runner.goal_secs = 0.0
    assert runner.admission().admits  # ADMISSION_P95_SECS=0 turns it off


def test_the_synchronous_path_gives_what_the_scheduled_one_gives(demo_audio):
    audio = demo_audio[: 16000 * 6]
    sync = StreamingPolicy(PassScheduler(Echo(), "echo"), PRESETS["balanced"], "en")
    finals = []
    for offset in range(0, len(audio), STEP):
        finals += sync.push_audio(audio[offset : offset + STEP]).finals
    finals += sync.finalize().finals
    engine = Echo()
    stream = scheduled(PassScheduler(engine, "echo"))
    streamed = []
    for offset in range(0, len(audio), STEP):
        stream.push_audio(audio[offset : offset + STEP])
        wait_for(lambda: not stream._in_flight)
        streamed += stream.collect().finals
    streamed += stream.finalize().finals
    words = [w for s in finals for w in s.words]
    assert [w for s in streamed for w in s.words] == words
    assert len(words) == 6
