"""What a web server process does once before it serves, and once when it stops."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import sync_to_async

log = logging.getLogger(__name__)


def warn_if_open() -> None:
    from django.conf import settings

    if settings.OPEN_ACCESS:
        log.warning(
            "OPEN_ACCESS is on: anyone who can reach this server can upload and delete recordings and start, "
            "pause and stop sessions. Keep it to a closed network."
        )


async def server_started() -> None:
    from media_app.scan import scan_media_dir
    from sessions_app.lifecycle import runtime

    warn_if_open()
    report = await sync_to_async(scan_media_dir, thread_sensitive=True)()
    # recordings stay listed when MEDIA_DIR is empty or not mounted; the operator should hear of it
    log.log(logging.WARNING if report.missing else logging.INFO, "media library: %s", report.lines()[-1])
    await runtime.start()


async def server_stopping() -> None:
    from sessions_app.lifecycle import runtime

    log.info("server stopping")
    await runtime.stop()


class ServerLifecycle:
    """ASGI wrapper: start-up work before serving, shutdown work when the server stops.

    uvicorn (`manage.py serve`) sends ASGI lifespan events. daphne (`runserver`) sends
    none, so there the start-up work runs before the first HTTP or WebSocket scope:
    import time would be too early (no event loop yet) and is shared with `runworker`.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._started: asyncio.Future[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] in ("http", "websocket"):
            await self._start_once()
        await self.app(scope, receive, send)

    async def _start_once(self) -> None:
        if self._started is None:
            self._started = asyncio.ensure_future(server_started())
        await asyncio.shield(self._started)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start_once()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await server_stopping()
                await send({"type": "lifespan.shutdown.complete"})
                return
