"""Transcripts as txt, json, srt and vtt."""

from __future__ import annotations

import json

import pytest

from models_app.streaming import TranscriptionSegment
from models_app.transcript import cues, render, timestamp


def seg(text: str, start: float, end: float, speaker: int | None = None) -> TranscriptionSegment:
    return TranscriptionSegment(text, start, end, True, speaker=speaker)


SEGMENTS = [
    seg("Welcome to", 0.0, 0.8),
    seg("the live server.", 0.8, 2.0),
    seg("Upload a recording", 2.4, 3.6),
    seg("and start.", 3.7, 4.5),
    seg("Much later.", 9.0, 10.0),
]


def test_fragments_join_into_cues_up_to_sentence_ends():
    assert [(c.start, c.end, c.text) for c in cues(SEGMENTS)] == [
        (0.0, 2.0, "Welcome to the live server."),
        (2.4, 4.5, "Upload a recording and start."),
        (9.0, 10.0, "Much later."),
    ]


def test_a_cue_never_outgrows_the_limits():
    many = [seg(f"word{i}", i * 0.5, i * 0.5 + 0.4) for i in range(40)]

    for cue in cues(many):
        assert cue.end - cue.start <= 6.0
        assert len(cue.text) <= 84


def test_srt():
    assert render(SEGMENTS[:2], "srt") == "1\n00:00:00,000 --> 00:00:02,000\nWelcome to the live server.\n"


def test_vtt_with_speakers():
    out = render([seg("Hello there.", 61.5, 62.25, speaker=1)], "vtt")

    assert out == "WEBVTT\n\n00:01:01.500 --> 00:01:02.250\n<v Speaker 1>Hello there.\n"


def test_txt_breaks_paragraphs_at_long_pauses():
    assert render(SEGMENTS, "txt") == ("Welcome to the live server. Upload a recording and start.\n\nMuch later.\n")


def test_json_keeps_every_final_segment():
    data = json.loads(render(SEGMENTS, "json"))

    assert [d["text"] for d in data] == [s.text for s in SEGMENTS]
    assert data[0] == {"start": 0.0, "end": 0.8, "text": "Welcome to", "speaker": None, "confidence": None}


def test_timestamps_past_an_hour():
    assert timestamp(3725.0456, ",") == "01:02:05,046"


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="Unknown transcript format 'doc'"):
        render(SEGMENTS, "doc")
