from __future__ import annotations

from django.urls import path

from models_app import views

urlpatterns = [
    path("api/models", views.model_list, name="model-list"),
]
