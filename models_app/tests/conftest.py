from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from media_app.audio import read_audio
from models_app.streaming import StreamingTranscriber, TranscriptionSegment

DEMO = Path(__file__).resolve().parents[2] / "media" / "demo.wav"
DEMO_TEXT = (
    "Welcome to the live transcription server. Upload a recording, start a session, and invite your "
    "colleagues. Everyone hears the audio and reads the subtitles as the words are spoken."
)


@dataclass
class Run:
    """Everything a stream said while a recording was pushed through it."""

    finals: list[TranscriptionSegment] = field(default_factory=list)
    partials: list[TranscriptionSegment] = field(default_factory=list)
    last_chunk_final: bool = False

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.finals)


def push_all(stream: StreamingTranscriber, audio: np.ndarray, chunk_secs: float = 0.1) -> Run:
    run = Run()
    step = int(16000 * chunk_secs)
    for offset in range(0, len(audio), step):
        chunk = stream.push_audio(audio[offset : offset + step])
        run.finals += chunk.finals
        run.partials += [s for s in chunk.segments if not s.is_final]
    chunk = stream.finalize()
    run.finals += chunk.finals
    run.partials += [s for s in chunk.segments if not s.is_final]
    run.last_chunk_final = chunk.is_final
    return run


@pytest.fixture(scope="session")
def demo_audio() -> np.ndarray:
    return read_audio(DEMO)
