"""The ASGI application: HTTP through Django, WebSockets through Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transcriber_site.settings")
django_http = get_asgi_application()  # sets Django up before anything imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from media_app.uploads import too_large_message, upload_body_limit_bytes  # noqa: E402
from sessions_app.routing import websocket_urlpatterns  # noqa: E402
from transcriber_site.lib.asgi import BodySizeLimit, OutOfSpace  # noqa: E402
from transcriber_site.lib.http import OUT_OF_SPACE_MESSAGE  # noqa: E402
from transcriber_site.startup import ServerLifecycle  # noqa: E402

# The file may be MAX_UPLOAD_SIZE_MB; multipart framing adds a little to it.
_BODY_LIMIT = upload_body_limit_bytes()

application = ServerLifecycle(
    ProtocolTypeRouter(
        {
            "http": OutOfSpace(BodySizeLimit(django_http, _BODY_LIMIT, too_large_message()), OUT_OF_SPACE_MESSAGE),
            # Listeners are anonymous and a session's socket only carries what anyone may see,
            # so no origin check: pages served from WS_HOST's sibling hosts may connect.
            "websocket": URLRouter(websocket_urlpatterns),
        }
    )
)
