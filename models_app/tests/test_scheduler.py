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


def test_an_overloaded_model_stretches_every_stream_alike(demo_audio):
    engine = Echo(max_batch=2, secs_per_call=0.3)  # one thread, two passes a call: about 6 passes a second
    runner = PassScheduler(engine, "echo")
    streams = [scheduled(runner) for _ in range(8)]  # at twice real time they ask for 32 passes a second
    stretched = [False for _ in streams]
    finals = [0 for _ in streams]
    for offset in range(0, 16000 * 12, STEP):
        for k, stream in enumerate(streams):
            stream.push_audio(demo_audio[offset : offset + STEP])
            finals[k] += len(stream.collect().finals)
            stretched[k] |= stream.stretched
        time.sleep(STEP / 16000 / 2)
    assert min(stream.passes for stream in streams) >= 3 and min(finals) >= 1  # nobody starved
    assert max(stream.behind_secs for stream in streams) < 8  # nobody left behind either
    assert all(stretched)
    load = runner.load()
    assert load["streams"] == 8 and load["busy"] > 0.5 and load["pass_period_secs"] > 1.0
    for stream in streams:
        stream.close()


def test_a_stretched_stream_sends_no_partials_and_a_busy_one_keeps_a_short_buffer(demo_audio):
    engine = Echo()
    stream = StreamingPolicy(PassScheduler(engine, "echo"), PRESETS["balanced"], "en")
    partials = [stream.push_audio(demo_audio[i : i + STEP]).partial for i in range(0, 16000 * 3, STEP)]
    assert any(p is not None and p.text for p in partials)  # on time, it shows its partials
    stream._stretched_until = stream._busy_until = 16000 * 60
    later = [stream.push_audio(demo_audio[i : i + STEP]) for i in range(16000 * 3, 16000 * 12, STEP)]
    assert all(c.partial.text == "" for c in later if c.partial is not None)  # at most the partial's removal
    assert sum(len(c.finals) for c in later) > 0  # finals go on
    assert stream._trim_samples() == 16000 * 4
    assert stream.timeline.total - stream.timeline.start <= 16000 * 5  # cut between any two finals


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
    runner = PassScheduler(Echo(), "echo")
    assert runner.admission(2.5).admits  # nothing measured: nothing to refuse on

    class Stub:
        stretched = False
        now = 0.0
        confirm_secs = 1.5

    runner._streams.update({Stub(), Stub()})
    now = time.monotonic()
    runner._late.extend((now, 1.0) for _ in range(scheduler.MIN_WORDS))
    assert runner.admission(2.5).admits
    runner._late.extend((now, 3.0) for _ in range(scheduler.MIN_WORDS * 2))
    refused = runner.admission(2.5)
    assert not refused.admits
    assert "at capacity" in refused.reason and "2 live sessions" in refused.reason and "3.0 s" in refused.reason
    # saturated replicas, whose passes come further apart now: with 3 streams instead of 2, further still
    runner._late.clear()
    runner._late.extend((now, 2.0) for _ in range(scheduler.MIN_WORDS))
    assert runner.admission(2.5).admits  # not saturated: 2.0 s stays 2.0 s
    runner._since = now - scheduler.WINDOW_SECS
    runner._busy.append((now, 0.95 * scheduler.WINDOW_SECS))
    runner._passes.extend([now - 9.0] * 90 + [now - 1.0] * 5)  # 0.21 s periods in the window, 1.2 s in the last 3 s
    refused = runner.admission(2.5)  # 2.0 - 0.21 + 1.2 * 3 / 2
    assert not refused.admits and "and with one more about 3.6 s, over the 2.5 s goal" in refused.reason
    runner._busy.clear()
    runner._passes.clear()
    # a fast ramp: lateness is still low, but what passes cost says where it will settle
    runner._late.clear()
    runner._late.extend((now, 1.0) for _ in range(scheduler.MIN_WORDS))
    runner._busy.extend((now, 0.4) for _ in range(scheduler.MIN_PASSES))
    runner._passes.extend([now] * scheduler.MIN_PASSES)  # all of them within the last RECENT_SECS
    refused = runner.admission(2.5)  # 1.5 s to be final + 3 streams' passes of 0.4 s on one replica + its own
    assert not refused.admits and "about 3.1 s" in refused.reason
    runner._busy.clear()
    runner._passes.clear()
    late = Stub()
    late.stretched = True
    runner._streams.add(late)
    refused = runner.admission(2.5)
    assert not refused.admits and "1 of its 3 live sessions wait for their turns" in refused.reason
    runner._streams.discard(late)
    monkeypatch.setattr(scheduler, "WINDOW_SECS", 0.001)
    time.sleep(0.01)
    assert runner.admission(2.5).admits  # what was measured is forgotten after the window
    assert runner.admission(0.0).admits  # ADMISSION_P95_SECS=0 turns it off


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
        wait_for(lambda: not stream._in_flight and stream.due() is None)  # the pass now due has run
        streamed += stream.collect().finals
    streamed += stream.finalize().finals
    words = [w for s in finals for w in s.words]
    assert [w for s in streamed for w in s.words] == words
    assert len(words) == 6
