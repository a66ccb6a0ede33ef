"""A transcript (final segments) as text, JSON, SRT or WebVTT."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

FORMATS = ("txt", "json", "srt", "vtt")
CONTENT_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "json": "application/json",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}

# Subtitle cues: fragments of speech are joined up to a sentence end, or these limits.
CUE_MAX_SECS = 6.0
CUE_MAX_CHARS = 84  # two lines of 42, the usual subtitle width
CUE_GAP_SECS = 1.0
PARAGRAPH_GAP_SECS = 2.0


class Segment(Protocol):
    text: str
    start_time: float
    end_time: float
    speaker: int | None


@dataclass
class Cue:
    start: float
    end: float
    text: str
    speaker: int | None


def render(segments: Sequence[Segment], fmt: str) -> str:
    if fmt == "txt":
        return as_text(segments)
    if fmt == "json":
        return as_json(segments)
    if fmt == "srt":
        return as_srt(segments)
    if fmt == "vtt":
        return as_vtt(segments)
    raise ValueError(f"Unknown transcript format '{fmt}'; use one of {', '.join(FORMATS)}.")


def as_text(segments: Sequence[Segment]) -> str:
    """Running text; a new paragraph after a long pause or when the speaker changes."""
    paragraphs: list[list[str]] = []
    previous: Segment | None = None
    for segment in segments:
        new_paragraph = (
            previous is None
            or segment.start_time - previous.end_time >= PARAGRAPH_GAP_SECS
            or segment.speaker != previous.speaker
        )
        if new_paragraph:
            paragraphs.append([])
        paragraphs[-1].append(segment.text.strip())
        previous = segment
    return "\n\n".join(" ".join(p) for p in paragraphs) + ("\n" if paragraphs else "")


def as_json(segments: Sequence[Segment]) -> str:
    return (
        json.dumps(
            [
                {
                    "start": round(s.start_time, 3),
                    "end": round(s.end_time, 3),
                    "text": s.text.strip(),
                    "speaker": s.speaker,
                    "confidence": getattr(s, "confidence", None),
                }
                for s in segments
            ],
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )


def cues(segments: Sequence[Segment]) -> list[Cue]:
    """Final fragments joined into readable subtitle cues."""
    out: list[Cue] = []
    for segment in segments:
        text = segment.text.strip()
        if not text:
            continue
        last = out[-1] if out else None
        joinable = (
            last is not None
            and not last.text.endswith((".", "!", "?", "…"))
            and segment.speaker == last.speaker
            and segment.start_time - last.end <= CUE_GAP_SECS
            and segment.end_time - last.start <= CUE_MAX_SECS
            and len(last.text) + 1 + len(text) <= CUE_MAX_CHARS
        )
        if joinable and last is not None:
            last.text += " " + text
            last.end = segment.end_time
        else:
            out.append(Cue(segment.start_time, segment.end_time, text, segment.speaker))
    return out


def timestamp(seconds: float, separator: str) -> str:
    millis = max(round(seconds * 1000), 0)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(cue: Cue) -> str:
    return f"[speaker {cue.speaker}] {cue.text}" if cue.speaker is not None else cue.text


def as_srt(segments: Sequence[Segment]) -> str:
    blocks = [
        f"{i}\n{timestamp(c.start, ',')} --> {timestamp(max(c.end, c.start + 0.001), ',')}\n{_cue_text(c)}\n"
        for i, c in enumerate(cues(segments), 1)
    ]
    return "\n".join(blocks)


def as_vtt(segments: Sequence[Segment]) -> str:
    blocks = [
        f"{timestamp(c.start, '.')} --> {timestamp(max(c.end, c.start + 0.001), '.')}\n"
        + (f"<v Speaker {c.speaker}>{c.text}" if c.speaker is not None else c.text)
        + "\n"
        for c in cues(segments)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)
