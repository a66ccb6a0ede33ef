from __future__ import annotations

from django.urls import path

from sessions_app import views

urlpatterns = [
    path("api/config", views.config, name="config"),
    path("api/health", views.health, name="health"),
    path("api/sessions", views.session_list, name="session-list"),
    path("api/sessions/<int:session_id>", views.session_detail, name="session-detail"),
    path("api/sessions/<int:session_id>/pause", views.session_pause, name="session-pause"),
    path("api/sessions/<int:session_id>/resume", views.session_resume, name="session-resume"),
    path("api/sessions/<int:session_id>/end", views.session_end, name="session-end"),
    path("api/sessions/<int:session_id>/transcript", views.session_transcript, name="session-transcript"),
]
