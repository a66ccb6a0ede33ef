from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import models, transaction
from django.dispatch import Signal
from django.utils import timezone

from media_app import audio

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".part"


class MediaInUse(Exception):
    """Raised (by the apps that use recordings) to refuse deleting one still in use."""


# Sent before a recording is deleted; a receiver raises MediaInUse to refuse. (Not
# pre_delete: that runs inside the delete's transaction, which an exception spoils.)
deleting = Signal()


class MediaFile(models.Model):
    """One recording of the library: a 16 kHz mono wav under MEDIA_DIR, shown by its original name."""

    filename = models.CharField(max_length=255, help_text="The original name, for display")
    stored_path = models.CharField(max_length=500, unique=True, help_text="Relative to MEDIA_DIR")
    original_format = models.CharField(max_length=16)
    duration_secs = models.FloatField()
    size_bytes = models.BigIntegerField(help_text="Size of the stored wav")
    # what the page shows beside the original's format; unknown (None) for rows imported before it was kept
    original_size_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="Size of the file as it came in (the upload, the scanned file)"
    )
    sample_rate = models.PositiveIntegerField(default=audio.SAMPLE_RATE)
    channels = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    missing_since = models.DateTimeField(
        null=True, blank=True, help_text="When a scan found the file gone; cleared when a scan finds it again"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.filename

    @property
    def path(self) -> Path:
        return settings.MEDIA_DIR / self.stored_path

    @property
    def missing(self) -> bool:
        """The stored file is not there now (MEDIA_DIR not mounted, the file removed by hand)."""
        return not self.path.is_file()

    @property
    def missing_message(self) -> str:
        return (
            f"The file of '{self.filename}' is missing from the media directory; "
            "it can be played again once it is back."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "filename": self.filename,
            "format": self.original_format,
            "duration_secs": round(self.duration_secs, 3),
            "size_bytes": self.size_bytes,
            "original_size_bytes": self.original_size_bytes,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "created_at": self.created_at.isoformat(),
            "missing": self.missing,
        }

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        """Delete the row and its stored file."""
        deleting.send(sender=MediaFile, instance=self)
        path = self.path
        with media_dir_lock():
            result = super().delete(*args, **kwargs)
            path.unlink(missing_ok=True)
        log.info("media %s deleted (%s)", self.pk, self.stored_path)
        return result

    def prune(self) -> bool:
        """Delete the row of a recording whose file is gone (`scan_media --prune`); False if the file is back.

        Raises MediaInUse like delete(); its sessions keep the recording's name, not the link.
        """
        deleting.send(sender=MediaFile, instance=self)
        pk = self.pk
        with media_dir_lock():
            if not self.missing:
                return False
            super().delete()
        log.warning("media %s pruned: its file %s is gone", pk, self.stored_path)
        return True

    @classmethod
    def import_file(cls, source: Path, display_name: str) -> MediaFile:
        """Convert `source` into the library and register it; nothing is left behind on failure.

        Raises audio.ConversionError with a sentence for the user.
        """
        display_name = display_name_for(display_name)
        audio.check_extension(display_name)
        media_dir = settings.MEDIA_DIR
        media_dir.mkdir(parents=True, exist_ok=True)
        final = _unique_stored_name(media_dir, display_name)
        partial = media_dir / f".{final.name}{PARTIAL_SUFFIX}"
        try:
            with writing(partial):  # held until the rename, so that no start-up cleanup takes it
                stored = audio.convert_to_wav(source, partial, display_name)
                original_size = source.stat().st_size
                with media_dir_lock(), transaction.atomic():
                    media = cls.objects.create(
                        filename=display_name,
                        stored_path=final.name,
                        original_format=audio.extension_of(display_name),
                        duration_secs=stored.duration_secs,
                        size_bytes=stored.size_bytes,
                        original_size_bytes=original_size,
                        sample_rate=stored.sample_rate,
                        channels=stored.channels,
                    )
                    partial.replace(final)
        finally:
            partial.unlink(missing_ok=True)
        log.info("media %s imported from %r: %.1f s", media.pk, display_name, media.duration_secs)
        return media


def display_name_for(name: str) -> str:
    """The name to show: the last path part, without control characters, never empty."""
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip().strip(".")
    return base[:255] or "recording"


def _unique_stored_name(media_dir: Path, display_name: str) -> Path:
    """A fresh, safe file name directly inside MEDIA_DIR, whatever the user's name held."""
    stem = display_name.rsplit(".", 1)[0]
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", ascii_stem).strip("-_")[:60] or "recording"
    while True:
        candidate = media_dir / f"{slug}-{secrets.token_hex(4)}.wav"
        if not candidate.exists():
            return candidate


@contextlib.contextmanager
def media_dir_lock() -> Iterator[None]:
    """Serialise changes to MEDIA_DIR and its rows across threads and processes.

    Held while a file appears or disappears together with its row, so that a scan never
    sees a file without its row or a row without its file half way.
    """
    media_dir = settings.MEDIA_DIR
    media_dir.mkdir(parents=True, exist_ok=True)
    with open(media_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# A file being written (a partial wav, a temporary upload) is held under an exclusive flock
# by the process writing it; remove_if_abandoned() deletes only files nobody holds, so a
# start-up removes what a killed process left and never what a live one writes.


def hold_new_file(handle: IO[bytes], path: Path) -> bool:
    """Lock the file just created at `path` for as long as `handle` stays open.

    False when a cleanup removed it between its creation and the lock: create another.
    """
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return _still_at(handle, path)


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Create `path` empty and hold it (see hold_new_file) while the block writes it by its name."""
    while True:
        handle = open(path, "xb")  # noqa: SIM115  (kept open, and so locked, for the whole block)
        if hold_new_file(handle, path):
            break
        handle.close()
    with handle:
        yield


def remove_if_abandoned(path: Path) -> bool:
    """Delete `path` unless a live process holds it; True if it was deleted."""
    try:
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if not _still_at(handle, path):
                return False  # removed or replaced meanwhile: not the file that was found
            path.unlink()
    except FileNotFoundError:
        return False
    return True


def _still_at(handle: IO[bytes], path: Path) -> bool:
    try:
        named, held = path.stat(), os.fstat(handle.fileno())
    except FileNotFoundError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
