from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def index(request: HttpRequest) -> HttpResponse:
    """The page: browse sessions, create one, upload media, and the player."""
    return render(request, "index.html")
