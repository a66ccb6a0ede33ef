"""`Authorization: Bearer <token>`: a script acts as the token's operator.

The middleware runs after Django's AuthenticationMiddleware. A request without the
header keeps its cookie session (or none); a request with a token that is unknown or
revoked is answered 401 at once, with a sentence, whatever it asked for. It is sync and
async capable, so the async views (health) are not pushed into a thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from transcriber_site.models import ApiToken


def bearer_key(request: HttpRequest) -> str | None:
    """The key of an `Authorization: Bearer` header ("" for an empty one), or None without one."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else None


def refused() -> JsonResponse:
    response = JsonResponse({"error": "The API token is unknown or has been revoked."}, status=401)
    response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def act_as(request: HttpRequest, user: Any) -> None:
    async def auser() -> Any:
        return user

    request.user = user
    request.auser = auser
    # no cookie is involved, so there is no cross-site request to forge
    request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]


class BearerTokenMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.async_mode:
            return self._acall(request)
        key = bearer_key(request)
        if key is not None:
            user = ApiToken.user_for(key) if key else None
            if user is None:
                return refused()
            act_as(request, user)
        response: HttpResponse = self.get_response(request)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        key = bearer_key(request)
        if key is not None:
            user = await sync_to_async(ApiToken.user_for)(key) if key else None
            if user is None:
                return refused()
            act_as(request, user)
        response: HttpResponse = await self.get_response(request)
        return response
