from __future__ import annotations

from django.urls import path

from media_app import views

urlpatterns = [
    path("api/media", views.media_list, name="media-list"),
    path("api/media/upload", views.media_upload, name="media-upload"),
    path("api/media/<int:media_id>", views.media_detail, name="media-detail"),
]
