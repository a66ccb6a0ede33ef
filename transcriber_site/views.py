from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie

from transcriber_site.access import may_operate
from transcriber_site.models import ApiToken, is_operator

LINK_REFUSED = "That sign-in link is unknown, used up or expired. Sign in here, or ask for a new link."


@never_cache
@ensure_csrf_cookie  # the page's POSTs send it back as X-CSRFToken
def index(request: HttpRequest) -> HttpResponse:
    """The page: browse sessions and play one; operators also create sessions and upload media.

    `/?token=<key>` is a sign-in link: it signs the browser in as the key's operator and
    redirects to the same address without the key, so that it stays out of the history.
    """
    if "token" in request.GET:
        return sign_in_by_link(request)
    context = {
        "operator": may_operate(request.user),
        "username": request.user.get_username(),
        "listen_access": settings.LISTEN_ACCESS,
        "sign_in_url": reverse("sign-in"),
        "sign_out_url": reverse("sign-out"),
    }
    return render(request, "index.html", context)


def sign_in_by_link(request: HttpRequest) -> HttpResponse:
    user = ApiToken.user_signing_in(request.GET["token"])
    if user is None or not is_operator(user):
        messages.error(request, LINK_REFUSED)
        return HttpResponseRedirect(reverse("sign-in"))
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")  # type: ignore[arg-type]
    rest = urlencode([(name, value) for name, value in request.GET.items() if name != "token"])
    return HttpResponseRedirect(reverse("index") + (f"?{rest}" if rest else ""))
