from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from models_app.models import SpeechModel
from models_app.registry import registry


@admin.register(SpeechModel)
class SpeechModelAdmin(admin.ModelAdmin[SpeechModel]):
    """The models of the registry: availability, whether loaded in this process, and memory."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Speech models",
            "opts": self.model._meta,
            "models": registry.describe_all(),
        }
        return TemplateResponse(request, "admin/models_app/speech_models.html", context)
