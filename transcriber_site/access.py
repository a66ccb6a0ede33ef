"""Who may do what: operators operate, listeners listen as LISTEN_ACCESS allows.

Operators are users with the operate permission (transcriber_site.models.is_operator), by
cookie session or API token; OPEN_ACCESS makes everyone one. Listeners need no account:

- `public`: every session is listed and can be joined;
- `link`: visitors see a session only with its share key (`?key=`), and the list shows them none;
- `operators`: listening needs an operator's sign-in.

A session a visitor may not see is answered as if it did not exist (404), so that ids
cannot be probed; under `operators` the answer is a 401 that says to sign in.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware

from transcriber_site.models import is_operator

SIGN_IN_TO_OPERATE = (
    "Sign in as an operator to do this, or send an operator's API token (Authorization: Bearer <token>)."
)
SIGN_IN_TO_LISTEN = "Sign in to listen: this server's sessions are for operators only."


def may_operate(user: Any) -> bool:
    return settings.OPEN_ACCESS or is_operator(user)


def operator_refusal(request: HttpRequest) -> tuple[int, str] | None:
    """Why `request` may not operate, as (status, sentence), or None when it may."""
    if may_operate(request.user):
        return None
    if not request.user.is_authenticated:
        return 401, SIGN_IN_TO_OPERATE
    return 403, f"{request.user.get_username()} is not an operator; an administrator can give the operate permission."


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, answering with its reason instead of a 403 page."""

    def _reject(self, request: HttpRequest, reason: str) -> str:
        return reason


def csrf_refusal(request: HttpRequest) -> str | None:
    """Why a cookie-signed-in request fails Django's CSRF check, or None when it passes.

    The API is csrf_exempt for the middleware and checks here instead, only where a cookie
    is what signs the request in: an anonymous request (OPEN_ACCESS) carries no one's
    authority, and a token request carries its own (the token middleware marks it).
    """
    if not request.user.is_authenticated or getattr(request, "_dont_enforce_csrf_checks", False):
        return None
    reason = _CsrfCheck(lambda request: None).process_view(request, lambda request: None, (), {})  # type: ignore[arg-type,return-value]
    if reason is None:
        return None
    return f"Refused: the request failed its cross-site request forgery check ({reason})."


def new_share_key() -> str:
    return secrets.token_urlsafe(16)


def may_list(user: Any) -> bool:
    """Does the session list show this visitor every session (else none)?"""
    return settings.LISTEN_ACCESS == "public" or may_operate(user)


def listen_refusal(user: Any) -> str | None:
    """The 401 sentence when LISTEN_ACCESS=operators keeps this visitor from every session."""
    if settings.LISTEN_ACCESS == "operators" and not may_operate(user):
        return SIGN_IN_TO_LISTEN
    return None


def may_listen(user: Any, share_key: str, key: str | None) -> bool:
    """May this visitor see and hear the session whose share key is `share_key`, given `key`?"""
    if may_operate(user) or settings.LISTEN_ACCESS == "public":
        return True
    if settings.LISTEN_ACCESS == "link":
        return bool(key) and secrets.compare_digest(str(key), share_key)
    return False
