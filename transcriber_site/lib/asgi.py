"""ASGI middleware of the site."""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from transcriber_site.lib.http import OUT_OF_SPACE

ASGIApp = Any

log = logging.getLogger(__name__)

ANONYMOUS_BODY_BYTES = 64 * 1024  # the biggest JSON body of the API is well under 1 KB


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Answer 413 to any HTTP request whose body is, or turns out to be, over `max_bytes`.

    A declared Content-Length over the limit is refused before a byte of the body is
    read; a body that grows past the limit (chunked, or a client that lied about its
    length) is cut off as soon as it crosses it, before Django spools it anywhere.

    A request that carries no credentials at all (no Authorization header, no session
    cookie) may be held to a smaller `anonymous` limit: it cannot be an operator's, and no
    listener's request has a body worth spooling.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        message: str,
        anonymous: tuple[int, str] | None = None,
        session_cookie: str = "sessionid",
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = message
        self.anonymous = anonymous
        self.session_cookie = session_cookie.encode()

    def _limit(self, scope: Scope) -> tuple[int, str]:
        if self.anonymous is None or _header(scope, b"authorization") is not None:
            return self.max_bytes, self.message
        cookies = _header(scope, b"cookie") or b""
        if any(part.strip().startswith(self.session_cookie + b"=") for part in cookies.split(b";")):
            return self.max_bytes, self.message
        return self.anonymous

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes, message = self._limit(scope)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._refuse(send, message)
            return
        received = 0

        async def counting_receive() -> Any:
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > max_bytes:
                    raise _BodyTooLarge
            return event

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            await self._refuse(send, message)

    async def _refuse(self, send: ASGISendCallable, message: str) -> None:
        # No "Connection: close": the server keeps the connection and discards the rest of the
        # body, so a client still sending gets to read this answer instead of a reset.
        await _send_json(send, 413, {"error": message})


async def _send_json(send: ASGISendCallable, status: int, data: dict[str, str]) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers, "trailers": False})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))  # type: ignore[call-overload]
    for name, value in headers:
        if name.lower() == wanted:
            return value.strip().lower()
    return None


class OutOfSpace:
    """Answer 507 with a JSON sentence when the disk fills before the application answered.

    Django's ASGI handler spools each request body to a temporary file (in the system
    temp dir) before any view runs, so a full disk there never reaches the API's own
    507: its OSError would escape to the server as a plain-text 500.
    """

    def __init__(self, app: ASGIApp, message: str) -> None:
        self.app = app
        self.message = message

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except OSError as exc:
            if exc.errno not in OUT_OF_SPACE or started:
                raise
            log.error("%s: out of disk space before the application answered: %s", scope.get("path"), exc)
            await _send_json(send, 507, {"error": self.message})
