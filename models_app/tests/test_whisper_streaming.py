"""Real speech through the bundled Whisper and the streaming policy, as a session streams it."""

from __future__ import annotations

import numpy as np
import pytest

from models_app.policy import normalise
from models_app.registry import registry
from models_app.tests.conftest import DEMO_TEXT, Run, push_all
from transcriber_site.testing import word_error_rate


@pytest.fixture(scope="module")
def balanced(demo_audio) -> Run:
    return push_all(registry.create_transcriber("whisper", preset="balanced"), demo_audio)


def test_the_transcript_contains_the_spoken_words(balanced):
    words = {normalise(w) for w in balanced.text.split()}

    assert {"welcome", "live", "transcription", "server", "recording", "session", "colleagues", "audio"} <= words
    assert word_error_rate(DEMO_TEXT, balanced.text) < 0.3, balanced.text


def test_finals_are_never_duplicated_and_follow_each_other(balanced):
    assert len(balanced.finals) >= 3
    for before, after in zip(balanced.finals, balanced.finals[1:], strict=False):
        assert after.start_time >= before.end_time - 1e-6
    words = [w for s in balanced.finals for w in s.words]
    texts = [normalise(w.text) for w in words]
    repeats = [texts[i : i + 3] for i in range(len(texts) - 5) if texts[i : i + 3] == texts[i + 3 : i + 6]]
    assert repeats == []


def test_every_final_has_word_timestamps_inside_it_and_inside_the_audio(balanced, demo_audio):
    duration = len(demo_audio) / 16000
    previous_end = 0.0
    for segment in balanced.finals:
        assert segment.words, segment
        assert segment.text == "".join(w.text for w in segment.words).strip()
        assert 0 <= segment.start_time <= segment.end_time <= duration + 1e-6
        for word in segment.words:
            assert segment.start_time - 1e-6 <= word.start <= word.end <= segment.end_time + 1e-6
            assert word.start >= previous_end - 1e-6
            previous_end = word.end
        assert segment.confidence is not None and 0 < segment.confidence <= 1


def test_partials_come_while_speaking_and_are_cleared_at_the_end(balanced):
    spoken = [p for p in balanced.partials if p.text]
    assert len(spoken) >= 3
    assert balanced.partials[-1].text == ""
    assert balanced.last_chunk_final


def test_silence_yields_no_text():
    rng = np.random.default_rng(0)
    quiet = (0.002 * rng.standard_normal(16000 * 8)).astype(np.float32)

    run = push_all(registry.create_transcriber("whisper"), quiet)

    assert run.finals == []
    assert [p.text for p in run.partials if p.text] == []


def test_music_yields_no_text():
    t = np.arange(16000 * 8) / 16000
    notes = sum(np.sin(2 * np.pi * f * t) for f in (262, 330, 392, 523))
    music = (0.1 * notes * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))).astype(np.float32)

    run = push_all(registry.create_transcriber("whisper"), music)

    assert run.finals == []
    assert [p.text for p in run.partials if p.text] == []


def test_speech_after_silence_is_timed_in_media_time(demo_audio):
    first_sentence = demo_audio[: int(16000 * 3.3)]
    audio = np.concatenate([np.zeros(16000 * 4, np.float32), first_sentence])

    run = push_all(registry.create_transcriber("whisper"), audio)

    assert "transcription" in normalise(run.text) or "transcription" in run.text.lower()
    assert run.finals[0].start_time >= 3.5


def test_finalize_confirms_speech_cut_off_mid_sentence(demo_audio):
    stream = registry.create_transcriber("whisper")

    run = push_all(stream, demo_audio[: int(16000 * 2.2)])  # "Welcome to the live transcr..."

    assert "welcome" in normalise(run.text.split()[0])
    assert run.last_chunk_final


def test_presets_change_how_often_the_buffer_is_transcribed(demo_audio):
    fast = registry.create_transcriber("whisper", preset="low_latency")
    slow = registry.create_transcriber("whisper", preset="accurate")

    push_all(fast, demo_audio)
    push_all(slow, demo_audio)

    assert fast.passes > 1.5 * slow.passes


def test_reset_starts_again_at_media_time_zero(demo_audio):
    stream = registry.create_transcriber("whisper", preset="low_latency")
    push_all(stream, demo_audio[: 16000 * 4])

    stream.reset()
    run = push_all(stream, demo_audio[: int(16000 * 3.3)])

    assert stream.now == pytest.approx(3.3, abs=0.01)
    assert run.finals and run.finals[0].start_time < 1.0


def test_streams_share_one_engine():
    a = registry.create_transcriber("whisper")
    b = registry.create_transcriber("whisper", preset="accurate")

    assert a.runner is b.runner
    assert a.runner.engine is registry.loaded("whisper").engine
