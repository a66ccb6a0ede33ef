"""The streaming policy's rules, proven with engines whose hypotheses are scripted.

The audio is real speech (so the VAD hears speech); what the "model" says is planned.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from models_app.engines.base import Engine, PassRequest, PassResult
from models_app.policy import PRESETS, Span, StreamingPolicy, without_loops
from models_app.scheduler import PassScheduler
from models_app.streaming import Word
from models_app.tests.conftest import push_all


class Scripted(Engine):
    """Answers each pass with `script(pass number, buffer seconds)`: (text, start, end) in buffer time."""

    def __init__(self, script: Callable[[int, float], list[tuple[str, float, float]]], timed: bool = True) -> None:
        self.script = script
        self.timed = timed
        self.requests: list[PassRequest] = []

    @classmethod
    def missing_files(cls, location):
        return None

    def transcribe(self, requests):
        out = []
        for request in requests:
            self.requests.append(request)
            words = self.script(len(self.requests), len(request.audio) / 16000)
            out.append(PassResult([Word(t, s, e, 0.9) for t, s, e in words], timed=self.timed))
        return out


def stream_over(engine: Engine, preset: str = "balanced", **kwargs) -> StreamingPolicy:
    return StreamingPolicy(PassScheduler(engine, "scripted"), PRESETS[preset], "en", **kwargs)


def speech_then_silence(demo_audio: np.ndarray, speech_secs: float, silence_secs: float) -> np.ndarray:
    return np.concatenate([demo_audio[: int(16000 * speech_secs)], np.zeros(int(16000 * silence_secs), np.float32)])


def test_a_word_is_final_only_once_two_passes_agree_on_it(demo_audio):
    # every pass changes its mind about the second word; the first is stable
    engine = Scripted(lambda n, secs: [(" welcome", 0.0, 0.5), (f" guess{n}", 0.6, 0.9)])
    stream = stream_over(engine)
    finals = []
    # continuous speech, no pause, and stopping before the guessed word is old enough to be final by age
    until = 0.9 + PRESETS["balanced"].confirm_after_secs - 0.2
    for offset in range(0, int(16000 * until), 1600):
        finals += stream.push_audio(demo_audio[offset : offset + 1600]).finals

    assert [w.text for s in finals for w in s.words] == [" welcome"]
    assert stream.passes >= 3


def test_a_pause_makes_everything_before_it_final(demo_audio):
    engine = Scripted(lambda n, secs: [(" welcome", 0.0, 0.5), (f" word{n}", 2.0, 2.6)] if secs > 2.9 else [])
    audio = speech_then_silence(demo_audio, 3.2, 1.5)  # "Welcome to the live transcription server." + silence

    run = push_all(stream_over(engine), audio)

    texts = [w.text for s in run.finals for w in s.words]
    assert texts[0] == " welcome"
    assert texts[1].startswith(" word")  # never agreed on, but the speaker stopped after it
    assert len(texts) == 2


def test_a_word_long_behind_the_newest_audio_is_final_without_agreement(demo_audio):
    engine = Scripted(lambda n, secs: [(f" w{n}", 0.1, 0.4), (f" x{n}", secs - 0.3, secs - 0.1)])
    stream = stream_over(engine, "low_latency")  # confirm_after_secs 2.0
    finals = []
    for offset in range(0, int(16000 * 3.0), 1600):
        finals += stream.push_audio(demo_audio[offset : offset + 1600]).finals

    assert len(finals) == 1 and finals[0].words[0].text.startswith(" w")
    assert finals[0].words[0].end <= stream.now - PRESETS["low_latency"].confirm_after_secs + 0.05


def test_final_words_repeated_by_a_later_pass_do_not_come_out_twice(demo_audio):
    # the model re-transcribes the confirmed words with times shifted a little later
    def script(n, secs):
        shift = min(0.03 * n, 0.2)
        return [
            (" welcome", 0.0 + shift, 0.5 + shift),
            (" to", 0.55 + shift, 0.7 + shift),
            (" the", 0.75 + shift, 0.9 + shift),
        ]

    run = push_all(stream_over(Scripted(script)), speech_then_silence(demo_audio, 3.2, 1.0))

    assert [w.text for s in run.finals for w in s.words] == [" welcome", " to", " the"]


def test_finals_are_never_retracted_when_the_model_changes_its_mind(demo_audio):
    hypotheses = {1: " a b c", 2: " a b c", 3: " a x y", 4: " a x y"}

    def script(n, secs):
        words = hypotheses.get(n, " a x y z").split(" ")[1:]
        return [(f" {w}", 0.3 * i, 0.3 * i + 0.25) for i, w in enumerate(words)]

    stream = stream_over(Scripted(script), "low_latency")
    finals = []
    for offset in range(0, 16000 * 3, 1600):
        finals += stream.push_audio(demo_audio[offset : offset + 1600]).finals
    texts = [w.text.strip() for s in finals for w in s.words]

    assert texts[:2] == ["a", "b"]  # agreed by passes 1 and 2: kept though pass 3 hears "x" for "b"
    assert "x" not in texts


def test_confirmed_words_are_offered_as_prefix_and_context(demo_audio):
    engine = Scripted(lambda n, secs: [(" welcome", 0.0, 0.5), (" to", 0.55, 0.7)])
    stream = stream_over(engine, supports_prefix=True)

    push_all(stream, speech_then_silence(demo_audio, 2.0, 0.0))

    assert any(r.prefix == "welcome to" for r in engine.requests)


def test_words_where_the_vad_heard_silence_are_dropped(demo_audio):
    # speech for 3.2 s, then 3 s of silence the "model" fills with an invented phrase
    def script(n, secs):
        words = [(" welcome", 0.0, 0.5)]
        if secs > 4.0:
            words.append((" thank you", 4.0, 4.5))
        return words

    run = push_all(stream_over(Scripted(script)), speech_then_silence(demo_audio, 3.2, 3.0))

    assert [w.text for s in run.finals for w in s.words] == [" welcome"]


def test_untimed_words_are_placed_over_the_speech(demo_audio):
    audio = np.concatenate(
        [np.zeros(16000 * 2, np.float32), demo_audio[: int(16000 * 3.2)], np.zeros(16000, np.float32)]
    )
    engine = Scripted(
        lambda n, secs: [(" welcome", 0, 0), (" to", 0, 0), (" the", 0, 0), (" server", 0, 0)], timed=False
    )

    run = push_all(stream_over(engine), audio)

    words = [w for s in run.finals for w in s.words]
    assert [w.text for w in words] == [" welcome", " to", " the", " server"]
    assert words[0].start >= 1.8  # not in the leading silence
    assert words[-1].end <= 5.4
    assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(words))


def test_the_buffer_never_grows_past_its_limit(demo_audio):
    speech = np.tile(demo_audio[: int(16000 * 12.5)], 4)  # 50 s of talk
    engine = Scripted(lambda n, secs: [(f" w{n}_{i}", i * 0.5, i * 0.5 + 0.4) for i in range(int(secs / 0.5))])
    stream = stream_over(engine)

    push_all(stream, speech)

    longest = max(len(r.audio) for r in engine.requests) / 16000
    assert longest <= PRESETS["balanced"].max_buffer_secs + PRESETS["balanced"].interval_secs + 0.11


def spans(text: str, seconds_per_word: float = 0.3, squeeze_from: int | None = None) -> list[Span]:
    """Words one after another, each `seconds_per_word` long; from `squeeze_from` on, all at one instant."""
    out, at = [], 0
    for i, word in enumerate(text.split()):
        length = 0 if squeeze_from is not None and i >= squeeze_from else int(16000 * seconds_per_word)
        out.append(Span(f" {word}", at, at + length))
        at += length
    return out


@pytest.mark.parametrize(
    ("words", "squeeze_from", "kept"),
    [
        ("a b c d", None, "a b c d"),
        ("try again. fail again. fail better.", None, "try again. fail again. fail better."),  # spoken, each copy
        ("hello? hello? hello?", None, "hello? hello? hello?"),
        ("go go go go", None, "go go go"),  # a fourth time in a row is a loop, whatever its times
        ("a b a b a b a b", None, "a b a b a b"),
        ("x a b c a b c", 4, "x a b c"),  # the copy has no audio behind it
        ("we had it was the best of", 2, "we had"),  # three words in no time: the decoder ran ahead of the audio
        ("tried. ever tried. ever tried.", 1, "tried."),  # squeezed words leading into the loop go with it
        ("that that is", None, "that that is"),
    ],
)
def test_loops_are_cut_where_the_words_have_no_audio_behind_them(words, squeeze_from, kept):
    hypothesis = spans(words, squeeze_from=squeeze_from)

    assert " ".join(w.text.strip() for w in without_loops(hypothesis)) == kept


def test_untimed_words_do_not_straddle_a_pause(demo_audio):
    first = demo_audio[int(16000 * 0.0) : int(16000 * 1.3)]  # "Welcome to the"
    second = demo_audio[int(16000 * 1.3) : int(16000 * 2.9)]  # "live transcription server"
    gap = np.zeros(int(16000 * 0.4), np.float32)  # shorter than the pause that would end the utterance
    audio = np.concatenate([first, gap, second, np.zeros(16000, np.float32)])
    names = [" welcome", " to", " the", " live", " transcription", " server"]
    engine = Scripted(lambda n, secs: [(w, 0, 0) for w in names], timed=False)

    run = push_all(stream_over(engine), audio)

    words = [w for s in run.finals for w in s.words]
    assert [w.text for w in words] == names
    silent_from, silent_to = 1.3 + 0.1, 1.7 - 0.1  # inside the gap, beyond the VAD's padding
    assert not any(w.start < silent_from and w.end > silent_to for w in words)


def test_a_word_the_model_doubts_is_final_only_by_age_and_a_second_later(demo_audio):
    class Doubting(Scripted):
        def transcribe(self, requests):
            results = super().transcribe(requests)
            return [
                PassResult([Word(w.text, w.start, w.end, 0.2 if "doubt" in w.text else 0.9) for w in r.words])
                for r in results
            ]

    engine = Doubting(lambda n, secs: [(" sure", 0.0, 0.4), (" doubt", 0.5, 0.9), (" later", 1.0, 1.3)])
    stream = stream_over(engine)
    age = PRESETS["balanced"].confirm_after_secs
    final_at = {}
    for offset in range(0, int(16000 * (0.9 + age + 1.6)), 1600):
        for segment in stream.push_audio(demo_audio[offset : offset + 1600]).finals:
            for word in segment.words:
                final_at[word.text] = stream.now

    assert list(final_at) == [" sure", " doubt", " later"]  # in order: nothing after a doubted word goes first
    assert final_at[" sure"] < 0.4 + age
    assert final_at[" doubt"] >= 0.9 + age + 1.0
