"""Bring MEDIA_DIR and the MediaFile rows into agreement (`manage.py scan_media`, server start)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from media_app import audio
from media_app.models import PARTIAL_SUFFIX, MediaFile, media_dir_lock


@dataclass
class ScanReport:
    registered: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    library_size: int = 0

    def lines(self) -> list[str]:
        out = [f"registered {name}" for name in self.registered]
        out += [f"converted {entry}" for entry in self.converted]
        out += [f"dropped the row of {name}: its file is gone" for name in self.dropped]
        out += [f"failed {entry}" for entry in self.failed]
        out += [f"ignored {name}: not an accepted type" for name in self.ignored]
        total = len(self.registered) + len(self.converted)
        out.append(
            f"{total} added, {len(self.dropped)} dropped, {len(self.failed)} failed, {self.library_size} in the library"
        )
        return out


def scan_media_dir() -> ScanReport:
    """Register audio files dropped into MEDIA_DIR by hand and drop rows whose files vanished.

    A file already in the stored form (16 kHz mono 16-bit wav) is registered where it
    lies; any other accepted file is converted to a new wav beside it and the original is
    removed once the conversion succeeded, so each recording keeps one stored file.
    """
    media_dir: Path = settings.MEDIA_DIR
    media_dir.mkdir(parents=True, exist_ok=True)
    report = ScanReport()
    for media in MediaFile.objects.all():
        with media_dir_lock():
            if not media.path.exists() and MediaFile.objects.filter(pk=media.pk).exists():
                MediaFile.objects.filter(pk=media.pk).delete()
                report.dropped.append(media.stored_path)
    known = set(MediaFile.objects.values_list("stored_path", flat=True))
    for path in sorted(_candidate_files(media_dir)):
        relative = path.relative_to(media_dir).as_posix()
        if relative in known:
            continue
        if audio.extension_of(path.name) not in audio.ACCEPTED_EXTENSIONS:
            report.ignored.append(relative)
        elif audio.is_library_wav(path):
            _register_in_place(path, relative)
            report.registered.append(relative)
        else:
            try:
                media = MediaFile.import_file(path, path.name)
            except audio.ConversionError as exc:
                report.failed.append(f"{relative}: {exc.message}")
                continue
            path.unlink()
            report.converted.append(f"{relative} -> {media.stored_path}")
    report.library_size = MediaFile.objects.count()
    return report


def _candidate_files(media_dir: Path) -> list[Path]:
    return [
        path
        for path in media_dir.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(media_dir).parts)
        and not path.name.endswith(PARTIAL_SUFFIX)
    ]


def _register_in_place(path: Path, relative: str) -> None:
    with media_dir_lock():
        MediaFile.objects.get_or_create(
            stored_path=relative,
            defaults={
                "filename": path.name,
                "original_format": "wav",
                "duration_secs": audio.wav_duration(path),
                "size_bytes": path.stat().st_size,
            },
        )
