from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import TemporaryUploadedFile
from django.http import HttpRequest, HttpResponse, JsonResponse

from media_app.audio import ConversionError
from media_app.models import MediaFile, MediaInUse
from media_app.uploads import too_large_message, upload_exceeded
from transcriber_site.lib.http import ApiError, api


# The library is the operators' (file names can be private); listeners see sessions.
@api("GET", operator=("GET",))
def media_list(request: HttpRequest) -> list[dict[str, Any]]:
    return [media.to_dict() for media in MediaFile.objects.all()]


@api("POST", operator=("POST",))
def media_upload(request: HttpRequest) -> HttpResponse | dict[str, Any]:
    if not request.META.get("CONTENT_LENGTH"):
        # Django parses multipart bodies only up to a declared length; say so instead of "no file"
        raise ApiError(411, "Send the upload with a Content-Length header; chunked uploads are not accepted.")
    upload = request.FILES.get("file")
    if upload_exceeded(request):
        raise ApiError(413, too_large_message())
    if not isinstance(upload, TemporaryUploadedFile):  # the only kind our upload handlers make
        raise ApiError(400, "Send the recording as a multipart/form-data upload in the field 'file'.")
    try:
        media = MediaFile.import_file(Path(upload.temporary_file_path()), upload.name or "")
    except ConversionError as exc:
        raise ApiError(exc.status, exc.message) from None
    return JsonResponse(media.to_dict(), status=201)


@api("GET", "DELETE", operator=("GET", "DELETE"))
def media_detail(request: HttpRequest, media_id: int) -> HttpResponse | dict[str, Any]:
    media = get_media(media_id)
    if request.method == "DELETE":
        try:
            media.delete()
        except MediaInUse as exc:
            raise ApiError(409, str(exc)) from None
        return HttpResponse(status=204)
    return media.to_dict()


def get_media(media_id: int) -> MediaFile:
    try:
        return MediaFile.objects.get(pk=media_id)
    except MediaFile.DoesNotExist:
        raise ApiError(404, f"There is no media file with id {media_id}.") from None
