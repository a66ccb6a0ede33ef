"""Final words grouped into subtitle cues, word by word, the way subtitle guidelines say."""

from __future__ import annotations

import itertools

import pytest

from models_app.streaming import Word
from models_app.transcript import CUE_MAX_CHARS, CUE_MAX_SECS, LINE_MAX_CHARS, CueBuilder, CuePiece, fits, lines


def spoken(tokens: str, start: float = 0.0, step: float = 0.3, length: float = 0.25) -> list[Word]:
    """Words from "| It| was| the| best|." (split at "|"), one every `step` seconds."""
    return [Word(text, start + i * step, start + i * step + length) for i, text in enumerate(tokens.split("|"))]


def cue_texts(pieces: list[CuePiece]) -> list[str]:
    texts: dict[int, str] = {}
    for piece in pieces:
        texts[piece.cue] = texts.get(piece.cue, "") + piece.text
    return [t.strip() for _, t in sorted(texts.items())]


def test_a_sentence_end_starts_a_new_cue():
    pieces = CueBuilder().add(spoken(" It| was| the| best| of| times|.| It| was| the| worst| of| times|!| Was| it|?"))

    assert cue_texts(pieces) == ["It was the best of times.", "It was the worst of times!", "Was it?"]
    assert [p.cue for p in pieces] == [0, 1, 2]


def test_a_sentence_end_inside_closing_quotes_starts_a_new_cue():
    pieces = CueBuilder().add(spoken(' He| said| "no|."| Then| he| left|.'))

    assert cue_texts(pieces) == ['He said "no."', "Then he left."]


def test_a_pause_of_two_seconds_starts_a_new_cue_and_a_short_one_does_not():
    words = [*spoken(" one| two"), *spoken(" three| four", start=0.55 + 0.5), *spoken(" five", start=1.6 + 2.0)]

    assert cue_texts(CueBuilder().add(words)) == ["one two three four", "five"]


def test_a_cue_never_holds_more_than_two_lines_of_42_characters():
    words = spoken("|".join(f" word{i:02d}" for i in range(40)), step=0.1, length=0.08)  # 4 s: time is no limit

    texts = cue_texts(CueBuilder().add(words))

    assert len(texts) > 1
    assert all(len(t) <= CUE_MAX_CHARS for t in texts)
    assert all(len(line) <= LINE_MAX_CHARS for t in texts for line in lines(t))
    assert all(not fits(f"{a} {b.split()[0]}") for a, b in itertools.pairwise(texts))  # each cue is full
    assert " ".join(texts) == " ".join(w.text.strip() for w in words)


def test_a_cue_ends_before_it_would_be_on_screen_longer_than_7_seconds():
    words = spoken("|".join(" go" for _ in range(20)), step=0.6, length=0.5)  # 12 s of short words, no pauses

    pieces = CueBuilder().add(words)

    assert len({p.cue for p in pieces}) == 2
    assert all(p.end - p.start <= CUE_MAX_SECS for p in pieces)
    assert pieces[1].start == pytest.approx(11 * 0.6)  # the 12th word would have ended 7.1 s after the first began


def test_punctuation_and_word_continuations_never_start_a_cue():
    # each would start a cue by every other rule: after a sentence end, a pause, a new speaker, the limits
    builder = CueBuilder()
    pieces = [
        *builder.add(spoken(" Mr|.")),
        *builder.add([Word("s.", 5.0, 5.1)]),
        *builder.add([Word(",", 9.0, 9.1)], speaker=3),
        *builder.add([Word("...", 20.0, 20.1)]),
    ]

    assert {p.cue for p in pieces} == {0}
    assert cue_texts(pieces) == ["Mr.s.,..."]


def test_a_word_too_long_for_the_cue_carries_its_punctuation_with_it():
    builder = CueBuilder()
    builder.add(spoken("|".join(" abcdefghi" for _ in range(8)), step=0.1))  # 79 characters
    pieces = builder.add([Word(" longword", 1.0, 1.1), Word(".", 1.1, 1.15)])

    assert [(p.cue, p.text) for p in pieces] == [(1, " longword.")]


def test_a_new_speaker_starts_a_new_cue():
    builder = CueBuilder()
    pieces = [
        *builder.add(spoken(" so| we"), speaker=0),
        *builder.add(spoken(" and| then", start=0.6), speaker=1),
        *builder.add(spoken(" right", start=1.2), speaker=1),
    ]

    assert cue_texts(pieces) == ["so we", "and then right"]
    assert [(p.cue, p.speaker) for p in pieces] == [(0, 0), (1, 1), (1, 1)]


def test_words_added_a_few_at_a_time_make_the_same_cues_as_all_at_once():
    text = (
        " It| was| the| best| of| times|,| it| was| the| worst| of| times|,| it| was| the| age| of| wisdom|,| it|"
        " was| the| age| of| foolish|ness|.| It| was| the| epoch| of| belief|,| it| was| the| epoch| of| in|credulity|."
    )
    words = spoken(text, step=0.35)
    words[36:] = [Word(w.text, w.start + 1.5, w.end + 1.5) for w in words[36:]]  # and a pause after "belief,"
    whole = CueBuilder().add(words)

    builder = CueBuilder()
    pieces = [p for i in range(0, len(words), 3) for p in builder.add(words[i : i + 3])]

    assert cue_texts(pieces) == cue_texts(whole)
    assert [w for p in pieces for w in p.words] == words
    assert [(p.cue, w) for p in pieces for w in p.words] == [(p.cue, w) for p in whole for w in p.words]
    assert len(whole) == len(cue_texts(whole)) > 2  # one call: one piece per cue


def test_a_piece_says_its_cue_text_and_times():
    (piece,) = CueBuilder().add([Word(" Hello", 1.0, 1.4), Word(" there", 1.5, 1.9), Word(".", 1.9, 2.0)])

    assert (piece.cue, piece.text, piece.start, piece.end, piece.speaker) == (0, " Hello there.", 1.0, 2.0, None)


def test_scripts_without_spaces_still_break_into_cues():
    words = [Word(ch, i * 0.2, i * 0.2 + 0.15) for i, ch in enumerate("今日は良い天気です。明日も晴れるでしょう。")]

    assert cue_texts(CueBuilder().add(words)) == ["今日は良い天気です。", "明日も晴れるでしょう。"]
