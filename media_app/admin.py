from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from media_app.models import MediaFile, MediaInUse


@admin.register(MediaFile)
class MediaFileAdmin(admin.ModelAdmin[MediaFile]):
    list_display = ["filename", "original_format", "duration", "size_bytes", "created_at", "missing_since"]
    list_filter = [("missing_since", admin.EmptyFieldListFilter)]  # "Empty": the file is there
    search_fields = ["filename", "stored_path"]
    readonly_fields = [
        "stored_path",
        "original_format",
        "duration_secs",
        "size_bytes",
        "original_size_bytes",
        "sample_rate",
        "channels",
        "created_at",
        "missing_since",
    ]

    @admin.display(description="duration", ordering="duration_secs")
    def duration(self, media: MediaFile) -> str:
        minutes, seconds = divmod(round(media.duration_secs), 60)
        return f"{minutes}:{seconds:02d}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # recordings come in through upload or scan_media, which convert them

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[MediaFile]) -> None:
        for media in queryset:
            self.delete_model(request, media)  # one by one, so that each stored file goes with its row

    def delete_model(self, request: HttpRequest, obj: MediaFile) -> None:
        try:
            obj.delete()
        except MediaInUse as exc:
            self.message_user(request, str(exc), messages.ERROR)
