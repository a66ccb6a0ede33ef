"""Streamed against offline, on recorded speech: the streaming code's own error.

Each clip goes through a live stream of the bundled Whisper (as fast as it goes, in
100 ms pushes, as a session feeds it) and through one offline pass of the same model
and decoding (`models_app.offline`). The streamed text must be as good as the offline
one: no worse WER against the known words (at most one point), no phrase said more
often than offline or the reference says it, and no sentence opening lost.
`bench/streaming.py` runs the same judgement on every clip of the set and every preset.
"""

from __future__ import annotations

import itertools

import pytest

from transcriber_site import speech_set
from transcriber_site.testing import differential

pytestmark = pytest.mark.slow

# a few short clips of every kind: read prose, a two-voice drama, codec, noise, tempo, band, odd length
CLIPS = [
    "beckett",
    "beckett+fast",
    "beckett+phone",
    "clone-test+odd",
    "endgame_nagg_nell",
    "two_cities+mp3_32k",
]
AGAINST_OFFLINE = 0.06  # without a reference: the streamed text differs from the offline one by at most this WER


@pytest.mark.parametrize("name", CLIPS)
def test_the_streamed_transcript_is_as_good_as_the_offline_one(name):
    result = differential(speech_set.clip(name))

    if result.reference is not None:
        assert result.streamed_wer is not None and result.offline_wer is not None
        assert result.streamed_wer <= result.offline_wer + 0.01, (result.streamed, result.offline)
    else:
        assert result.against_offline <= AGAINST_OFFLINE, (result.streamed, result.offline)
    assert result.repeated == [], result.streamed
    assert result.lost_starts == [], (result.streamed, result.offline)


@pytest.mark.parametrize("preset", ["low_latency", "accurate"])
def test_every_preset_says_two_parallel_sentences_once_each(preset):
    result = differential(speech_set.clip("beckett"), preset=preset)

    assert result.streamed_wer == 0.0, result.streamed
    assert result.lost_starts == [] and result.repeated == []


def test_finals_come_in_order_and_never_overlap():
    result = differential(speech_set.clip("endgame_nagg_nell"))

    words = [w for segment in result.finals for w in segment.words]
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(words))
    assert all(w.start <= w.end for w in words)
