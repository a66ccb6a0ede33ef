"""Upload handling: count the bytes of an upload and stop it at MAX_UPLOAD_SIZE_MB."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict


def upload_limit_bytes() -> int:
    return int(settings.MAX_UPLOAD_SIZE_MB) * 1024 * 1024


def too_large_message() -> str:
    return f"The upload is larger than the {settings.MAX_UPLOAD_SIZE_MB} MB limit (MAX_UPLOAD_SIZE_MB)."


class SizeLimitedUploadHandler(FileUploadHandler):
    """First in the chain: passes data on and stops the upload once it exceeds the limit.

    It counts what actually arrives, so a client that declares a small Content-Length
    (or none) is stopped all the same; the temporary file of the part is closed and
    deleted by Django when the upload stops.
    """

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = upload_limit_bytes()
        self.received = 0
        self.exceeded = False

    def handle_raw_input(
        self, input_data: Any, META: Any, content_length: int, boundary: Any, encoding: str | None = None
    ) -> tuple[QueryDict, MultiValueDict[str, UploadedFile]] | None:
        if content_length > self.limit:
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
