from __future__ import annotations

from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from transcriber_site.lib.serving import uvicorn_options


class Command(BaseCommand):
    help = "Serve the site (HTTP and WebSocket) with uvicorn, the production server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for all)")
        parser.add_argument("--port", type=int, default=settings.PORT, help="port (default: PORT, 8000)")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        # uvicorn, not daphne: daphne queues a whole request body in memory before the
        # application reads it (and Twisted parses multipart bodies into memory as well),
        # so a 1 GB upload would cost gigabytes of RAM; uvicorn streams it with backpressure.
        uvicorn.run(
            "transcriber_site.asgi:application",
            host=host,
            port=port,
            loop="asyncio",
            lifespan="on",
            log_level="info",
            server_header=False,
            **uvicorn_options(),  # header timeout, WebSocket message size, pings
        )
