from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from transcriber_site import views

urlpatterns = [
    path("", views.index, name="index"),
    path(
        "sign-in",
        auth_views.LoginView.as_view(template_name="sign_in.html", redirect_authenticated_user=True),
        name="sign-in",
    ),
    path("sign-out", auth_views.LogoutView.as_view(), name="sign-out"),  # POST, from the page's form
    path("admin/", admin.site.urls),
    path("", include("media_app.urls")),
    path("", include("models_app.urls")),
    path("", include("sessions_app.urls")),
]
