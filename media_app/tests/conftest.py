"""Helpers the media tests share."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.management import call_command

from media_app.audio import convert_to_wav
from transcriber_site.testing import tone, write_audio


def scan(*args: str) -> str:
    """`manage.py scan_media` with `args`; what it printed."""
    out = io.StringIO()
    call_command("scan_media", *args, stdout=out)
    return out.getvalue()


def library_wav(path: Path, seconds: float = 1.0) -> Path:
    """A file already in the library's stored form (16 kHz mono 16-bit wav) at `path`."""
    source = write_audio(path.with_suffix(".flac"), tone(seconds))
    convert_to_wav(source, path, source.name)
    source.unlink()
    return path
