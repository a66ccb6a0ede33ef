"""The JSON API's conventions: plain JSON bodies, errors as {"error": "<sentence>"}."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


class ApiError(Exception):
    """Raised anywhere below a view to answer with `{"error": message}` and `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return data


ViewResult = HttpResponse | dict[str, Any] | list[Any]


def api(*methods: str) -> Callable[[Callable[..., ViewResult]], Callable[..., HttpResponse]]:
    """Make a JSON API view: allowed methods, JSON out, ApiError turned into its response.

    The API has no cookie-based authentication, so CSRF protection has nothing to
    protect there; it stays on for the admin and the page.
    """

    def decorate(view: Callable[..., ViewResult]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error(405, f"{request.method} is not allowed here; use {' or '.join(methods)}.")
                response["Allow"] = ", ".join(methods)
                return response
            try:
                result = view(request, *args, **kwargs)
            except ApiError as exc:
                return error(exc.status, exc.message)
            if isinstance(result, HttpResponse):
                return result
            return JsonResponse(result, safe=False)

        return wrapper

    return decorate
