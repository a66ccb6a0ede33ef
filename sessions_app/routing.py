"""WebSocket paths: a session's socket, and a clean refusal for any other path."""

from __future__ import annotations

import json
from typing import Any

from django.urls import path, re_path

from sessions_app.consumers import SessionConsumer
from transcriber_site.lib.http import shown


async def no_such_socket(scope: Any, receive: Any, send: Any) -> None:
    """Refuse the handshake: 404 with a JSON sentence where the server lets the app answer
    it (uvicorn does), else a close before accepting (the server answers 403)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    sentence = f"There is no WebSocket at {shown(scope['path'])}; listeners connect to /ws/<session id> or /ws."
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps({"error": sentence}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": 404, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 4404, "reason": sentence[:120]})


websocket_urlpatterns = [
    path("ws/<int:session_id>", SessionConsumer.as_asgi()),
    path("ws", SessionConsumer.as_asgi()),
    re_path(r"", no_such_socket),  # type: ignore[arg-type]  # Channels routes ASGI apps; the stubs know views
]
