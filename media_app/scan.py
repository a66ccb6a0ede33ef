"""Bring MEDIA_DIR and the MediaFile rows into agreement (`manage.py scan_media`, server start)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from media_app import audio
from media_app.models import PARTIAL_SUFFIX, MediaFile, MediaInUse, media_dir_lock, remove_if_abandoned
from media_app.uploads import UPLOAD_FILE_PREFIX, upload_temp_dir

log = logging.getLogger(__name__)


@dataclass
class ScanReport:
    registered: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    found_again: list[str] = field(default_factory=list)
    marked_missing: list[str] = field(default_factory=list)
    still_missing: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    kept_in_use: list[str] = field(default_factory=list)  # missing, but --prune may not delete them
    failed: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    removed_partials: list[str] = field(default_factory=list)
    removed_uploads: list[str] = field(default_factory=list)
    library_size: int = 0

    @property
    def missing(self) -> int:
        return len(self.marked_missing) + len(self.still_missing)

    def lines(self) -> list[str]:
        out = [f"removed {name}: left by a conversion that did not finish" for name in self.removed_partials]
        out += [f"removed {name}: left by an upload that did not finish" for name in self.removed_uploads]
        out += [f"registered {name}" for name in self.registered]
        out += [f"converted {entry}" for entry in self.converted]
        out += [f"found again {entry}" for entry in self.found_again]
        out += [
            f"marked missing {entry}: its file is gone; the row and its sessions stay (scan_media --prune deletes it)"
            for entry in self.marked_missing
        ]
        out += [f"still missing {entry}" for entry in self.still_missing]
        out += [f"pruned {entry}: its file is gone" for entry in self.pruned]
        out += [f"kept {entry}" for entry in self.kept_in_use]
        out += [f"failed {entry}" for entry in self.failed]
        out += [f"ignored {name}: not an accepted type" for name in self.ignored]
        total = len(self.registered) + len(self.converted)
        summary = (
            f"{total} added, {len(self.found_again)} found again, {len(self.marked_missing)} marked missing, "
            f"{len(self.pruned)} pruned, {len(self.failed)} failed, {self.library_size} in the library"
        )
        out.append(summary + (f" ({self.missing} missing)" if self.missing else ""))
        return out


def scan_media_dir(prune: bool = False) -> ScanReport:
    """Register audio files dropped into MEDIA_DIR by hand; mark rows whose files are gone as missing.

    A file already in the stored form (16 kHz mono 16-bit wav) is registered where it
    lies; any other accepted file is converted to a new wav beside it and the original is
    removed once the conversion succeeded, so each recording keeps one stored file.

    A row whose file is gone stays (an unmounted disk must not empty the library) and is
    found again when its file is back; `prune` deletes such rows instead. Partial and
    temporary files that no live process holds are removed first.
    """
    media_dir: Path = settings.MEDIA_DIR
    media_dir.mkdir(parents=True, exist_ok=True)
    report = ScanReport()
    _remove_leftovers(media_dir, report)
    for media in MediaFile.objects.all():
        _check_file(media, prune, report)
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


def _remove_leftovers(media_dir: Path, report: ScanReport) -> None:
    """Partial wavs and temporary uploads whose writer died (kill -9, power cut) go; held ones stay."""
    for path in sorted(media_dir.glob(f".*{PARTIAL_SUFFIX}")):
        if remove_if_abandoned(path):
            report.removed_partials.append(path.name)
    uploads = upload_temp_dir()
    uploads.mkdir(parents=True, exist_ok=True)
    for path in sorted(uploads.glob(f"{UPLOAD_FILE_PREFIX}*")):
        if path.is_file() and remove_if_abandoned(path):
            report.removed_uploads.append(_shown(path, media_dir))
    for name in report.removed_partials + report.removed_uploads:
        log.info("removed %s: left by a conversion or upload that did not finish", name)


def _check_file(media: MediaFile, prune: bool, report: ScanReport) -> None:
    entry = f"{media.stored_path} (media {media.pk})"
    if prune and media.missing:
        try:
            if media.prune():
                report.pruned.append(entry)
                return
        except MediaInUse as exc:
            report.kept_in_use.append(f"{entry}: {exc}")  # and marked missing below
    with media_dir_lock():
        missing = media.missing
        if missing and media.missing_since is None:
            MediaFile.objects.filter(pk=media.pk).update(missing_since=timezone.now())
            report.marked_missing.append(entry)
            log.warning("media %s: its file %s is missing; the row is kept", media.pk, media.path)
        elif missing:
            report.still_missing.append(entry)
        elif media.missing_since is not None:
            MediaFile.objects.filter(pk=media.pk).update(missing_since=None)
            report.found_again.append(entry)
            log.info("media %s: its file %s is back", media.pk, media.path)


def _shown(path: Path, media_dir: Path) -> str:
    return path.relative_to(media_dir).as_posix() if path.is_relative_to(media_dir) else str(path)


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
                "original_size_bytes": path.stat().st_size,  # the file found is the original
            },
        )
