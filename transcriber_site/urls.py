from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from transcriber_site import views

urlpatterns = [
    path("", views.index, name="index"),
    path("admin/", admin.site.urls),
    path("", include("media_app.urls")),
    path("", include("models_app.urls")),
    path("", include("sessions_app.urls")),
]
