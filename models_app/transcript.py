"""Subtitle cues, built once from the final words, and a transcript as text, JSON, SRT or WebVTT.

A `CueBuilder` (one per transcript) groups final words into cues the way broadcast
subtitle guidelines do, word by word as they arrive, with no look-ahead (finals are never
retracted; a cue keeps growing until it closes). A new cue starts at a word that starts a
word (a leading space) when

* the previous word ends a sentence (`.`, `!`, `?`, `…`, before closing quotes or brackets),
* the pause since the previous word is at least `CUE_PAUSE_SECS`,
* the speaker changes,
* the cue's text would no longer fit `CUE_MAX_LINES` lines of `LINE_MAX_CHARS` (and at
  most `CUE_MAX_CHARS` characters, the line break counted as one), or
* the cue would be on screen longer than `CUE_MAX_SECS`.

A word without a leading space (punctuation, the rest of a word: "." or "s.") always stays
with the previous word; in scripts written without spaces (CJK, Thai) a letter starts a
word. Each call to `add` returns the pieces its words made: the words that fell into one
cue. Stored rows carry their piece's cue index, and `render` joins consecutive rows of one
cue back into it, so the page and every export show the same cues. In srt and vtt a cue
stays at least `CUE_MIN_SECS` on screen where the next cue leaves room.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from models_app.streaming import Word

FORMATS = ("txt", "json", "srt", "vtt")
CONTENT_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "json": "application/json",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}

LINE_MAX_CHARS = 42  # the usual subtitle line
CUE_MAX_LINES = 2
CUE_MAX_CHARS = LINE_MAX_CHARS * CUE_MAX_LINES  # 84, the line break counted as one character
CUE_MAX_SECS = 7.0  # the longest a cue stays on screen
CUE_MIN_SECS = 1.0  # the shortest, where the next cue leaves room (applied when rendering)
CUE_PAUSE_SECS = 0.8  # a pause this long between two words starts a new cue
PARAGRAPH_GAP_SECS = 2.0  # txt: a pause this long between cues starts a new paragraph
SENTENCE_ENDS = (".", "!", "?", "…", "。", "！", "？")
CLOSERS = "\"'”’»)]}」』"  # may follow a sentence end
# scripts written without spaces between words: their letters start words without a space
UNSPACED_SCRIPTS = ("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER")


class Segment(Protocol):
    text: str
    start_time: float
    end_time: float
    speaker: int | None


@dataclass
class CuePiece:
    """Consecutive words of one cue, from one call to `CueBuilder.add`."""

    cue: int  # the cue's index: 0, 1, 2 ... in order
    words: list[Word]
    speaker: int | None

    @property
    def text(self) -> str:
        """The words as the model wrote them: a leading space where a word starts, so the
        texts of a cue's pieces concatenate into the cue's text."""
        return "".join(w.text for w in self.words)

    @property
    def start(self) -> float:
        return self.words[0].start

    @property
    def end(self) -> float:
        return self.words[-1].end


class CueBuilder:
    """Final words -> cues, one word at a time (the rules of the module docstring)."""

    def __init__(self) -> None:
        self.cue = -1  # the open cue's index; -1 before the first word
        self.text = ""  # the open cue's text so far
        self.start = 0.0
        self.speaker: int | None = None
        self.last: Word | None = None

    def add(self, words: Sequence[Word], speaker: int | None = None) -> list[CuePiece]:
        """New final words, in order -> the pieces they make: consecutive words of one cue."""
        pieces: list[CuePiece] = []
        for word in words:
            if not word.text.strip():
                continue
            if self._starts_cue(word, speaker):
                self.cue += 1
                self.text, self.start, self.speaker = word.text.lstrip(), word.start, speaker
            else:
                self.text += word.text
            if pieces and pieces[-1].cue == self.cue:
                pieces[-1].words.append(word)
            else:
                pieces.append(CuePiece(self.cue, [word], speaker))
            self.last = word
        return pieces

    def _starts_cue(self, word: Word, speaker: int | None) -> bool:
        last = self.last
        if last is None:
            return True
        if not starts_word(word.text):
            return False
        return (
            ends_sentence(last.text)
            or word.start - last.end >= CUE_PAUSE_SECS
            or speaker != self.speaker
            or word.end - self.start > CUE_MAX_SECS
            or not fits(self.text + word.text)
        )


def starts_word(text: str) -> bool:
    """Whether a word's text begins a new word (else it continues the previous one)."""
    if not text:
        return False
    first = text[0]
    return first.isspace() or unicodedata.name(first, "").startswith(UNSPACED_SCRIPTS)


def ends_sentence(text: str) -> bool:
    return text.rstrip().rstrip(CLOSERS).endswith(SENTENCE_ENDS)


def lines(text: str) -> list[str]:
    """A cue's text in at most CUE_MAX_LINES (2) lines: broken at the space nearest the middle that keeps both
    lines within LINE_MAX_CHARS, or (when none does) at the space nearest the middle."""
    text = text.strip()
    if len(text) <= LINE_MAX_CHARS:
        return [text]
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    if not spaces:
        return [text]
    fitting = [i for i in spaces if i <= LINE_MAX_CHARS and len(text) - i - 1 <= LINE_MAX_CHARS]
    middle = (len(text) - 1) / 2
    at = min(fitting or spaces, key=lambda i: (abs(i - middle), i))
    return [text[:at].rstrip(), text[at + 1 :].lstrip()]


def fits(text: str) -> bool:
    """Whether a cue's text fits its lines and its characters."""
    text = text.strip()
    return len(text) <= CUE_MAX_CHARS and all(len(line) <= LINE_MAX_CHARS for line in lines(text))


# --- rendering -----------------------------------------------------------------------------------


@dataclass
class Cue:
    start: float
    end: float  # when its last word ends
    text: str
    speaker: int | None
    confidence: float | None = None
    words: list[Word] = field(default_factory=list)


def cues(segments: Sequence[Segment]) -> list[Cue]:
    """Consecutive segments with the same `cue` joined into one cue each (a segment without
    a `cue`, from before cues were stored, is a cue of its own)."""
    groups: list[list[Segment]] = []
    for segment in segments:
        cue = getattr(segment, "cue", None)
        if groups and cue is not None and getattr(groups[-1][-1], "cue", None) == cue:
            groups[-1].append(segment)
        else:
            groups.append([segment])
    return [cue for cue in map(_cue_of, groups) if cue.text]


def _cue_of(group: list[Segment]) -> Cue:
    each = [_words_of(segment) for segment in group]
    words = [w for segment_words in each for w in segment_words]
    if all(each):
        text = "".join(w.text for w in words).strip()
    else:  # texts without their words: join them as words
        text = " ".join(t for t in (s.text.strip() for s in group) if t)
    known = [c for c in (getattr(s, "confidence", None) for s in group) if c is not None]
    return Cue(
        start=group[0].start_time,
        end=max(s.end_time for s in group),
        text=text,
        speaker=group[0].speaker,
        confidence=sum(known) / len(known) if known else None,
        words=words,
    )


def _words_of(segment: Segment) -> list[Word]:
    """A segment's words: `Word`s, or `[text, start, end]` lists as rows store them."""
    return [w if isinstance(w, Word) else Word(w[0], w[1], w[2]) for w in getattr(segment, "words", None) or []]


def display_ends(shown: Sequence[Cue]) -> list[float]:
    """When each cue leaves the screen: at least CUE_MIN_SECS after its start, where the next
    cue leaves room, never into the next cue."""
    ends = []
    for i, cue in enumerate(shown):
        end = cue.start + CUE_MIN_SECS
        if i + 1 < len(shown):
            end = min(end, shown[i + 1].start)
        ends.append(max(cue.end, end, cue.start + 0.001))
    return ends


Names = Mapping[str, str]  # a session's speaker names: {"0": "Diane"}


def speaker_label(speaker: int | None, names: Names | None = None) -> str | None:
    """What a speaker is called: the session's name for them, else "Speaker N" (N from 1)."""
    if speaker is None:
        return None
    return (names or {}).get(str(speaker)) or f"Speaker {speaker + 1}"


def render(segments: Sequence[Segment], fmt: str, names: Names | None = None) -> str:
    if fmt == "txt":
        return as_text(segments, names)
    if fmt == "json":
        return as_json(segments, names)
    if fmt == "srt":
        return as_srt(segments, names)
    if fmt == "vtt":
        return as_vtt(segments, names)
    raise ValueError(f"Unknown transcript format '{fmt}'; use one of {', '.join(FORMATS)}.")


def as_text(segments: Sequence[Segment], names: Names | None = None) -> str:
    """Running text; a new paragraph after a long pause or when the speaker changes, led by the speaker's name."""
    paragraphs: list[list[str]] = []
    previous: Cue | None = None
    for cue in cues(segments):
        if previous is None or cue.start - previous.end >= PARAGRAPH_GAP_SECS or cue.speaker != previous.speaker:
            label = speaker_label(cue.speaker, names)
            paragraphs.append([f"{label}:"] if label else [])
        paragraphs[-1].append(cue.text)
        previous = cue
    return "\n\n".join(" ".join(p) for p in paragraphs) + ("\n" if paragraphs else "")


def as_json(segments: Sequence[Segment], names: Names | None = None) -> str:
    """One object per cue, with its words; times are when the words were said."""
    return json.dumps([_cue_dict(c, names) for c in cues(segments)], indent=2, ensure_ascii=False) + "\n"


def _cue_dict(cue: Cue, names: Names | None = None) -> dict[str, Any]:
    return {
        "start": round(cue.start, 3),
        "end": round(cue.end, 3),
        "text": cue.text,
        "speaker": cue.speaker,
        "speaker_name": speaker_label(cue.speaker, names),
        "confidence": round(cue.confidence, 3) if cue.confidence is not None else None,
        "words": [{"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3)} for w in cue.words],
    }


def timestamp(seconds: float, separator: str) -> str:
    millis = max(round(seconds * 1000), 0)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def as_srt(segments: Sequence[Segment], names: Names | None = None) -> str:
    """SubRip; a cue with a speaker starts "Name: " (the usual convention, as SubRip has no voices)."""
    shown = cues(segments)
    blocks = []
    for i, (cue, end) in enumerate(zip(shown, display_ends(shown), strict=True), 1):
        label = speaker_label(cue.speaker, names)
        text = (f"{label}: " if label else "") + "\n".join(lines(cue.text))
        blocks.append(f"{i}\n{timestamp(cue.start, ',')} --> {timestamp(end, ',')}\n{text}\n")
    return "\n".join(blocks)


def as_vtt(segments: Sequence[Segment], names: Names | None = None) -> str:
    """WebVTT; a cue with a speaker carries a voice tag, <v Name>."""
    shown = cues(segments)
    blocks = []
    for cue, end in zip(shown, display_ends(shown), strict=True):
        label = speaker_label(cue.speaker, names)
        voice = f"<v {vtt_escape(label)}>" if label else ""
        text = voice + "\n".join(vtt_escape(line) for line in lines(cue.text))
        blocks.append(f"{timestamp(cue.start, '.')} --> {timestamp(end, '.')}\n{text}\n")
    return "WEBVTT\n\n" + "\n".join(blocks)


def vtt_escape(text: str) -> str:
    """Text as WebVTT cue text: &, < and > escaped, so that a name or a word never opens a tag."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
