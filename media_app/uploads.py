"""Upload handling: count the file's bytes against MAX_UPLOAD_SIZE_MB, spool it to UPLOAD_TEMP_DIR under a lock."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict

from media_app import audio
from media_app.models import hold_new_file

# Multipart framing (boundaries, part headers, small fields) a body may carry beyond the file.
MULTIPART_ALLOWANCE = 1024 * 1024
# Temporary uploads are named so; a start-up cleanup removes only such files of UPLOAD_TEMP_DIR.
UPLOAD_FILE_PREFIX = "upload-"


def upload_limit_bytes() -> int:
    """The most bytes the uploaded file itself may have."""
    return int(settings.MAX_UPLOAD_SIZE_MB) * 1024 * 1024


def upload_body_limit_bytes() -> int:
    """The most bytes a whole upload request body may have: the file and its framing."""
    return upload_limit_bytes() + MULTIPART_ALLOWANCE


def too_large_message() -> str:
    return f"The upload is larger than the {settings.MAX_UPLOAD_SIZE_MB} MB limit (MAX_UPLOAD_SIZE_MB)."


def upload_temp_dir() -> Path:
    """Where uploads are spooled while they arrive and convert (UPLOAD_TEMP_DIR, else MEDIA_DIR/.uploads)."""
    return Path(settings.UPLOAD_TEMP_DIR) if settings.UPLOAD_TEMP_DIR else settings.MEDIA_DIR / ".uploads"


class SizeLimitedUploadHandler(FileUploadHandler):
    """First in the chain: passes data on and stops the upload once the file exceeds the limit.

    It counts the file's bytes as they arrive, not the body's (a file of exactly the limit
    passes whatever its framing), so a client that declares a small Content-Length (or
    none) is stopped all the same; the temporary file of the part is closed and deleted
    by Django when the upload stops.
    """

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = upload_limit_bytes()
        self.received = 0
        self.exceeded = False

    def handle_raw_input(
        self, input_data: Any, META: Any, content_length: int, boundary: Any, encoding: str | None = None
    ) -> tuple[QueryDict, MultiValueDict[str, UploadedFile]] | None:
        if content_length > upload_body_limit_bytes():
            self.exceeded = True
            return QueryDict(), MultiValueDict()  # parse nothing; the view answers 413
        return None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self._stop()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None

    def _stop(self) -> None:
        self.exceeded = True
        raise StopUpload(connection_reset=True)


def upload_exceeded(request: HttpRequest) -> bool:
    return any(getattr(handler, "exceeded", False) for handler in request.upload_handlers)


class LockedUploadedFile(TemporaryUploadedFile):
    """A temporary upload in upload_temp_dir(), held locked (models.hold_new_file) until it is closed."""

    def __init__(
        self, name: str | None, content_type: str | None, size: int, charset: str | None, content_type_extra: Any = None
    ) -> None:
        ext = audio.extension_of(name or "")
        suffix = f".{ext}" if ext in audio.ACCEPTED_EXTENSIONS else ""  # PyAV's probe goes by it too
        UploadedFile.__init__(self, _locked_temp_file(suffix), name, content_type, size, charset, content_type_extra)


def _locked_temp_file(suffix: str) -> IO[bytes]:
    directory = upload_temp_dir()
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        file = tempfile.NamedTemporaryFile(prefix=UPLOAD_FILE_PREFIX, suffix=suffix, dir=directory)  # noqa: SIM115
        if hold_new_file(file, Path(file.name)):
            return file
        with contextlib.suppress(FileNotFoundError):
            file.close()


class LockedTemporaryFileUploadHandler(FileUploadHandler):
    """Django's TemporaryFileUploadHandler, writing LockedUploadedFiles.

    A full disk removes what was written of the file before the error goes on to the view
    (which answers 507).
    """

    file: LockedUploadedFile

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.file = LockedUploadedFile(self.file_name, self.content_type, 0, self.charset, self.content_type_extra)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        try:
            self.file.write(raw_data)
        except OSError:
            self.upload_interrupted()
            raise

    def file_complete(self, file_size: int) -> UploadedFile:
        self.file.seek(0)
        self.file.size = file_size
        return self.file

    def upload_interrupted(self) -> None:
        if hasattr(self, "file"):
            path = Path(self.file.temporary_file_path())
            with contextlib.suppress(OSError):  # on a full disk, flushing what is buffered fails again
                self.file.close()
            path.unlink(missing_ok=True)
