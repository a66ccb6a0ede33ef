"""WebSocket paths: a session's socket, the Browse tab's feed, and a clean refusal for any other path."""

from __future__ import annotations

from typing import Any

from django.urls import path, re_path

from sessions_app.consumers import SessionConsumer, SessionListConsumer, refuse_handshake
from transcriber_site.lib.http import shown


async def no_such_socket(scope: Any, receive: Any, send: Any) -> None:
    """Refuse the handshake of any other path with a 404 and a sentence."""
    message = await receive()
    if message["type"] == "websocket.connect":
        path = shown(scope["path"])
        await refuse_handshake(
            scope,
            send,
            404,
            f"There is no WebSocket at {path}; listeners connect to /ws/<session id> or /ws, "
            "the Browse tab to /ws/sessions.",
        )


websocket_urlpatterns = [
    path("ws/sessions", SessionListConsumer.as_asgi()),
    path("ws/<int:session_id>", SessionConsumer.as_asgi()),
    path("ws", SessionConsumer.as_asgi()),
    re_path(r"", no_such_socket),  # type: ignore[arg-type]  # Channels routes ASGI apps; the stubs know views
]
