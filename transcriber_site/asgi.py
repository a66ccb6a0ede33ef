"""The ASGI application: HTTP through Django, WebSockets through Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transcriber_site.settings")
django_http = get_asgi_application()  # sets Django up before anything imports models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from media_app.uploads import too_large_message, upload_body_limit_bytes  # noqa: E402
from sessions_app.routing import websocket_urlpatterns  # noqa: E402
from transcriber_site.lib.asgi import ANONYMOUS_BODY_BYTES, BodySizeLimit, OutOfSpace  # noqa: E402
from transcriber_site.lib.http import OUT_OF_SPACE_MESSAGE  # noqa: E402
from transcriber_site.startup import ServerLifecycle  # noqa: E402

# The file may be MAX_UPLOAD_SIZE_MB; multipart framing adds a little to it. A request with
# no sign-in at all cannot upload, so it gets no more than a JSON body needs.
_BODY_LIMIT = upload_body_limit_bytes()
_ANONYMOUS_MESSAGE = "Sign in as an operator to upload; a request without a sign-in may carry 64 KB at most."
_ANONYMOUS_LIMIT = None if settings.OPEN_ACCESS else (ANONYMOUS_BODY_BYTES, _ANONYMOUS_MESSAGE)

application = ServerLifecycle(
    ProtocolTypeRouter(
        {
            "http": OutOfSpace(
                BodySizeLimit(
                    django_http,
                    _BODY_LIMIT,
                    too_large_message(),
                    anonymous=_ANONYMOUS_LIMIT,
                    session_cookie=settings.SESSION_COOKIE_NAME,
                ),
                OUT_OF_SPACE_MESSAGE,
            ),
            # A socket only carries what its listener may see (transcriber_site.access decides
            # at join, from the session cookie and the share key), so no origin check: pages
            # served from WS_HOST's sibling hosts may connect.
            "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
        }
    )
)
