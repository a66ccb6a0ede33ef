from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from media_app.audio import ConversionError, read_audio
from models_app.policy import DEFAULT_PRESET, PRESETS
from models_app.registry import ModelError, registry
from models_app.streaming import SAMPLE_RATE, StreamingTranscriber, TranscriptionChunk, Word
from models_app.transcript import FORMATS, CueBuilder, CuePiece, render

# options that only mean something while the file is replayed through the stream
LIVE_ONLY = {
    "preset": "--preset applies only to --live: the default offline pass has no streaming preset.",
    "realtime": "--realtime applies only to --live: the default offline pass reads the whole file at once.",
    "chunk_ms": "--chunk-ms applies only to --live: the default offline pass reads the whole file at once.",
    "partials": "--partials needs --live: the default offline pass has no partials, only its final words.",
}


@dataclass
class Piece:
    """One cue piece as a transcript segment (what `render` reads)."""

    text: str
    start_time: float
    end_time: float
    speaker: int | None
    confidence: float | None
    cue: int
    words: list[Word] = field(default_factory=list)

    @classmethod
    def of(cls, piece: CuePiece) -> Piece:
        known = [w.probability for w in piece.words if w.probability is not None]
        confidence = sum(known) / len(known) if known else None
        return cls(piece.text, piece.start, piece.end, piece.speaker, confidence, piece.cue, list(piece.words))


class Command(BaseCommand):
    help = (
        "Print the transcript of a recording. By default one offline pass over the whole file, the "
        "best transcript the model gives (what a completed session's final version is); with --live, "
        "the file is replayed through the streaming stream a session uses, in small chunks (as fast "
        "as possible, or in real time), and the live transcript is printed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="any recording the media library accepts")
        parser.add_argument("--model", default="whisper", help=f"model id ({', '.join(registry.specs)})")
        parser.add_argument("--language", help="source language code, e.g. en (default: the model's first)")
        parser.add_argument("--target-language", help="translate into this language (models that translate)")
        parser.add_argument("--format", default="txt", choices=FORMATS)
        parser.add_argument("--live", action="store_true", help="replay the file through the streaming stream")
        parser.add_argument(
            "--preset", choices=list(PRESETS), help=f"streaming preset, --live only (default {DEFAULT_PRESET})"
        )
        parser.add_argument("--realtime", action="store_true", help="--live only: feed the audio at its pace")
        parser.add_argument("--chunk-ms", type=int, help="--live only: audio per push, 20 to 100 ms (default 100)")
        parser.add_argument("--partials", action="store_true", help="--live only: partials and finals on stderr")

    def handle(self, *args: Any, path: Path, live: bool, **options: Any) -> None:
        if options["chunk_ms"] is not None and not 20 <= options["chunk_ms"] <= 100:
            raise CommandError("--chunk-ms must be between 20 and 100.")
        if not live:
            for name, message in LIVE_ONLY.items():
                if options[name] not in (None, False):
                    raise CommandError(message)
        if not path.is_file():
            raise CommandError(f"There is no file at {path}.")
        try:
            audio = read_audio(path)
        except ConversionError as exc:
            raise CommandError(exc.message) from None
        try:
            pieces = self._live(audio, **options) if live else self._offline(audio, **options)
        except ModelError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(render([Piece.of(p) for p in pieces], options["format"]), ending="")

    def _offline(self, audio: np.ndarray, model: str, **options: Any) -> list[CuePiece]:
        words = registry.transcribe_offline(
            model, audio, language=options["language"], target_language=options["target_language"]
        )
        return CueBuilder().add(words)

    def _live(self, audio: np.ndarray, model: str, **options: Any) -> list[CuePiece]:
        """The file through the stream as a session plays it; finals become cues the way a session's do."""
        stream = registry.create_transcriber(
            model,
            language=options["language"],
            target_language=options["target_language"],
            preset=options["preset"] or DEFAULT_PRESET,
        )
        builder = CueBuilder()
        pieces: list[CuePiece] = []
        for chunk in self._chunks(stream, audio, options["chunk_ms"] or 100, options["realtime"]):
            if options["partials"]:
                self._show(chunk)
            for segment in chunk.finals:
                # as a session stores it: a final without word times is one word over its whole time
                words = segment.words or [Word(" " + segment.text.strip(), segment.start_time, segment.end_time)]
                pieces += builder.add(words, segment.speaker)
        return pieces

    @staticmethod
    def _chunks(
        stream: StreamingTranscriber, audio: np.ndarray, chunk_ms: int, realtime: bool
    ) -> Iterator[TranscriptionChunk]:
        step = SAMPLE_RATE * chunk_ms // 1000
        started = time.monotonic()
        for offset in range(0, len(audio), step):
            if realtime:
                time.sleep(max(0.0, offset / SAMPLE_RATE - (time.monotonic() - started)))
            yield stream.push_audio(audio[offset : offset + step])
        yield stream.finalize()

    def _show(self, chunk: TranscriptionChunk) -> None:
        """Each final and partial as it comes, on stderr (stdout keeps only the transcript)."""
        for segment in chunk.segments:
            text = segment.text.strip()
            if segment.is_final:
                line = f"[final {segment.start_time:.1f}-{segment.end_time:.1f}s] {text}"
            elif text:
                line = f"[partial {segment.end_time:.1f}s] {text}"
            else:
                continue
            self.stderr.write(line, style_func=str)  # progress, not an error: no red on a terminal
