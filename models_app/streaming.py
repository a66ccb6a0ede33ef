"""The streaming interface every model offers to sessions, and the data it speaks in.

    stream = registry.create_transcriber(model_id, language=..., **options)
    chunk  = stream.push_audio(samples_f32_16k)   # -> TranscriptionChunk
    chunk  = stream.finalize()
    stream.reset()

Times are seconds of media time (the position in the recording). Final segments are
never retracted; a partial segment replaces the previous partial, and a partial with
empty text means "no partial any more".
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Word:
    text: str  # as the model wrote it: a leading space where a new word starts, punctuation attached
    start: float
    end: float
    probability: float | None = None


@dataclass
class TranscriptionSegment:
    text: str
    start_time: float
    end_time: float
    is_final: bool
    speaker: int | None = None
    confidence: float | None = None
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start_time"] = round(self.start_time, 3)
        data["end_time"] = round(self.end_time, 3)
        data["words"] = [
            {"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3), "probability": w.probability}
            for w in self.words
        ]
        return data


@dataclass
class TranscriptionChunk:
    """What one call returned: new final segments first, then at most one partial.

    `is_final` is True for the chunk of `finalize()`: nothing follows it.
    """

    segments: list[TranscriptionSegment] = field(default_factory=list)
    is_final: bool = False

    @property
    def finals(self) -> list[TranscriptionSegment]:
        return [s for s in self.segments if s.is_final]

    @property
    def partial(self) -> TranscriptionSegment | None:
        return next((s for s in self.segments if not s.is_final), None)


class StreamingTranscriber(abc.ABC):
    """One session's stream: light per-session state over a shared, loaded engine."""

    @abc.abstractmethod
    def push_audio(self, samples: np.ndarray) -> TranscriptionChunk:
        """Take the next mono float32 16 kHz samples; return what became known."""

    @abc.abstractmethod
    def finalize(self) -> TranscriptionChunk:
        """The audio has ended: confirm everything still pending."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget everything and start again at media time 0."""
