from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from models_app.registry import registry
from transcriber_site.lib.http import api


@api("GET")
def model_list(request: HttpRequest) -> list[dict[str, Any]]:
    return registry.describe_all()
