"""Transcripts as txt, json, srt and vtt: one cue per group of stored pieces, in every format."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from models_app.streaming import TranscriptionSegment, Word
from models_app.transcript import CueBuilder, cues, lines, render, timestamp


@dataclass
class Row:
    """What a stored piece offers `render` (a `TranscriptSegment` row, without the database)."""

    cue: int
    text: str
    start_time: float
    end_time: float
    speaker: int | None = None
    confidence: float | None = None
    words: list[list] = field(default_factory=list)


def rows_of(*finals: list[Word], speaker: int | None = None, confidence: float | None = None) -> list[Row]:
    """The rows a session stores for these finals, one list of words each."""
    builder = CueBuilder()
    return [
        Row(p.cue, p.text, p.start, p.end, p.speaker, confidence, [[w.text, w.start, w.end] for w in p.words])
        for final in finals
        for p in builder.add(final, speaker)
    ]


def said(*timed: tuple[str, float, float]) -> list[Word]:
    return [Word(text, start, end) for text, start, end in timed]


def evenly(tokens: str) -> list[Word]:
    """Words from " It| was| the" (split at "|"), one every 0.3 s."""
    return [Word(text, i * 0.3, i * 0.3 + 0.25) for i, text in enumerate(tokens.split("|"))]


# finals cut where a streaming policy happened to confirm, not where sentences end
FINALS = [
    said((" Welcome", 0.0, 0.4), (" to", 0.4, 0.8)),
    said((" the", 0.8, 1.0), (" live", 1.0, 1.4), (" server", 1.4, 1.9), (".", 1.9, 2.0), (" Upload", 2.4, 2.9)),
    said((" a", 2.9, 3.0), (" recording", 3.0, 3.6), (" and", 3.7, 3.9), (" start", 3.9, 4.4), (".", 4.4, 4.5)),
    said((" Much", 9.0, 9.4), (" later", 9.4, 9.9), (".", 9.9, 10.0)),
]
ROWS = rows_of(*FINALS, confidence=0.9)


def test_pieces_of_one_cue_render_as_one_cue_in_every_format():
    assert [(c.start, c.end, c.text) for c in cues(ROWS)] == [
        (0.0, 2.0, "Welcome to the live server."),
        (2.4, 4.5, "Upload a recording and start."),
        (9.0, 10.0, "Much later."),
    ]
    assert render(ROWS, "srt") == (
        "1\n00:00:00,000 --> 00:00:02,000\nWelcome to the live server.\n\n"
        "2\n00:00:02,400 --> 00:00:04,500\nUpload a recording and start.\n\n"
        "3\n00:00:09,000 --> 00:00:10,000\nMuch later.\n"
    )
    assert render(ROWS, "vtt").count(" --> ") == 3


def test_a_cue_shorter_than_a_second_stays_a_second_where_the_next_cue_leaves_room():
    rows = rows_of(
        said((" Yes", 0.0, 0.3), (".", 0.3, 0.35)),
        said((" No", 0.9, 1.2), (".", 1.2, 1.3)),  # starts 0.9 s after "Yes."
        said((" Maybe", 5.0, 5.4), (".", 5.4, 5.5)),
    )

    assert render(rows, "srt").split("\n\n") == [
        "1\n00:00:00,000 --> 00:00:00,900\nYes.",  # up to the next cue, not into it
        "2\n00:00:00,900 --> 00:00:01,900\nNo.",
        "3\n00:00:05,000 --> 00:00:06,000\nMaybe.\n",  # the last one too
    ]


def test_a_long_cue_breaks_into_two_lines_at_the_space_nearest_the_middle():
    text = "It was the best of times, it was the worst of times, it was the age"

    assert lines(text) == ["It was the best of times, it was", "the worst of times, it was the age"]
    assert lines("Short enough for one line.") == ["Short enough for one line."]
    # both lines within 42 characters wins over the balance
    assert lines("a b " + "c" * 40) == ["a b", "c" * 40]
    assert lines("x" * 50) == ["x" * 50]  # no space: what it can


def test_srt_and_vtt_show_cues_in_two_lines_and_keep_speakers():
    words = evenly(" It| was| the| best| of| times| it| was| the| worst| of| them")
    rows = rows_of(words, speaker=1)

    assert render(rows, "srt") == (
        "1\n00:00:00,000 --> 00:00:03,550\nSpeaker 2: It was the best of times\nit was the worst of them\n"
    )
    assert render(rows, "vtt") == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:03.550\n<v Speaker 2>It was the best of times\nit was the worst of them\n"
    )


def test_vtt_with_speakers():
    out = render(rows_of(said((" Hello", 61.5, 61.9), (" there.", 61.9, 62.25)), speaker=1), "vtt")

    assert out == "WEBVTT\n\n00:01:01.500 --> 00:01:02.500\n<v Speaker 2>Hello there.\n"  # speakers count from 1


def test_names_replace_the_numbers_and_cannot_open_a_tag():
    rows = rows_of(said((" a", 0.0, 0.5), (" <b>", 0.5, 0.9)), speaker=0)
    names = {"0": "Ann & <Bo>"}
    assert render(rows, "vtt", names).endswith("<v Ann &amp; &lt;Bo&gt;>a &lt;b&gt;\n")
    assert render(rows, "srt", names).endswith("Ann & <Bo>: a <b>\n")
    assert render(rows, "txt", names) == "Ann & <Bo>: a <b>\n"
    assert json.loads(render(rows, "json", names))[0]["speaker_name"] == "Ann & <Bo>"


def test_txt_breaks_paragraphs_at_long_pauses():
    assert render(ROWS, "txt") == "Welcome to the live server. Upload a recording and start.\n\nMuch later.\n"


def test_json_has_one_object_per_cue_with_its_words():
    data = json.loads(render(ROWS, "json"))

    assert [d["text"] for d in data] == ["Welcome to the live server.", "Upload a recording and start.", "Much later."]
    assert data[2] == {
        "start": 9.0,
        "end": 10.0,
        "text": "Much later.",
        "speaker": None,
        "speaker_name": None,
        "confidence": 0.9,
        "words": [
            {"text": " Much", "start": 9.0, "end": 9.4},
            {"text": " later", "start": 9.4, "end": 9.9},
            {"text": ".", "start": 9.9, "end": 10.0},
        ],
    }
    assert [w["text"] for w in data[0]["words"]] == [" Welcome", " to", " the", " live", " server", "."]


def test_segments_without_cues_are_a_cue_each():
    segments = [TranscriptionSegment("Welcome to", 0.0, 0.8, True), TranscriptionSegment("the server.", 0.8, 2.0, True)]

    assert [c.text for c in cues(segments)] == ["Welcome to", "the server."]
    assert render(segments, "txt") == "Welcome to the server.\n"


def test_timestamps_past_an_hour():
    assert timestamp(3725.0456, ",") == "01:02:05,046"


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="Unknown transcript format 'doc'"):
        render(ROWS, "doc")
