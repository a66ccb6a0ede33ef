"""The timeline's promises, proven with scripted engines: nothing final is said twice,
nothing unconfirmed loses its audio, and positions are exact sample counts."""

from __future__ import annotations

import numpy as np

from models_app.engines.base import Engine, PassRequest, PassResult
from models_app.policy import PRESETS, StreamingPolicy
from models_app.scheduler import PassScheduler
from models_app.streaming import Word


class PrefixEngine(Engine):
    """Knows the words of the audio (text, start, end in media seconds) and answers like Whisper:
    only what follows the forced prefix, timed from the buffer's start; `tail` is what a
    looping decoder adds after the audio it heard, squeezed onto its last instant."""

    def __init__(self, words: list[tuple[str, float, float]], tail: str = "") -> None:
        self.words = words
        self.tail = tail
        self.requests: list[tuple[PassRequest, float]] = []
        self.stream: StreamingPolicy | None = None

    @classmethod
    def missing_files(cls, location):
        return None

    def transcribe(self, requests):
        out = []
        for request in requests:
            assert self.stream is not None
            start = self.stream.timeline.start / 16000
            heard = start + len(request.audio) / 16000
            self.requests.append((request, start))
            said = len(request.prefix.split()) if request.prefix else 0
            inside = [(t, s, e) for t, s, e in self.words if s >= start - 0.05 and e <= heard]
            new = [Word(f" {t}", s - start, e - start, 0.9) for t, s, e in inside[said:]]
            end = heard - start
            new += [Word(f" {t}", end, end, 0.5) for t in self.tail.split()]
            out.append(PassResult(new, continues_prefix=True))
        return out


def stream_over(engine: PrefixEngine, preset: str = "balanced") -> StreamingPolicy:
    stream = StreamingPolicy(PassScheduler(engine, "scripted"), PRESETS[preset], "en", supports_prefix=True)
    engine.stream = stream
    return stream


def words_over(audio_secs: float, every: float = 0.3) -> list[tuple[str, float, float]]:
    return [(f"w{i}", i * every, i * every + every * 0.8) for i in range(int(audio_secs / every))]


def push_checked(stream: StreamingPolicy, audio: np.ndarray, step: int = 1600) -> list[Word]:
    finals: list[Word] = []
    for offset in range(0, len(audio), step):
        finals += [w for s in stream.push_audio(audio[offset : offset + step]).finals for w in s.words]
        stream.timeline.check()
    finals += [w for s in stream.finalize().finals for w in s.words]
    return finals


def test_a_looping_decoder_never_makes_final_words_come_out_again(demo_audio):
    audio = demo_audio[: 16000 * 12]  # continuous speech
    engine = PrefixEngine(words_over(12.0), tail="w0 w1 w2 w3 w0 w1 w2 w3")
    stream = stream_over(engine)

    finals = push_checked(stream, audio)

    texts = [w.text for w in finals]
    assert len(texts) == len(set(texts)), texts  # every scripted word once
    assert texts == sorted(texts, key=lambda t: int(t.strip()[1:]))


def test_a_pass_that_goes_back_before_the_final_words_ends_there(demo_audio):
    audio = demo_audio[: 16000 * 6]
    script = words_over(6.0)

    class Restarting(PrefixEngine):
        def transcribe(self, requests):
            results = super().transcribe(requests)
            # the decoder starts over: the buffer's first words again, timed at its start
            return [
                PassResult([*r.words, Word(" w0", 0.0, 0.2), Word(" w1", 0.2, 0.4)], continues_prefix=True)
                for r in results
            ]

    stream = stream_over(Restarting(script))

    texts = [w.text for w in push_checked(stream, audio)]

    assert texts.count(" w0") == 1 and texts.count(" w1") == 1


def test_the_audio_of_every_word_not_yet_final_stays_in_the_buffer(demo_audio):
    audio = np.tile(demo_audio[: int(16000 * 12.5)], 4)  # 50 s of talk, more than two buffers hold
    engine = PrefixEngine(words_over(len(audio) / 16000))
    stream = stream_over(engine)
    final: set[str] = set()
    cuts = 0

    for offset in range(0, len(audio), 1600):
        before = stream.timeline.start
        final |= {w.text.strip() for s in stream.push_audio(audio[offset : offset + 1600]).finals for w in s.words}
        cuts += stream.timeline.start != before
        waiting = [s for t, s, e in engine.words if t not in final and e * 16000 <= stream.timeline.total]
        assert all(round(s * 16000) >= stream.timeline.start for s in waiting)

    assert cuts >= 2
    final |= {w.text.strip() for s in stream.finalize().finals for w in s.words}
    assert final == {t for t, _, _ in engine.words}


def test_positions_are_exact_sample_counts_whatever_the_length(demo_audio):
    for n in (64002, 160001, 16000 * 7 + 3):
        engine = PrefixEngine(words_over(n / 16000))
        stream = stream_over(engine)

        push_checked(stream, demo_audio[:n], step=337)

        assert stream.timeline.total == n
        assert stream.timeline.start <= n
