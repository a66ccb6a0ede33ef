from __future__ import annotations

from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Transcription sessions"

    def ready(self) -> None:
        from sessions_app import signals  # noqa: F401 - connects the receivers
