from __future__ import annotations

from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.urls import reverse

from transcriber_site.lib.serving import uvicorn_options
from transcriber_site.operators import first_run_sign_in_link


class Command(BaseCommand):
    help = "Serve the site (HTTP and WebSocket) with uvicorn, the production server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for all)")
        parser.add_argument("--port", type=int, default=settings.PORT, help="port (default: PORT, 8000)")
        parser.add_argument(
            "--sign-in-link",
            action="store_true",
            help="print a one-time sign-in link for the local operator (created if there is no operator yet)",
        )

    def handle(self, *args: Any, host: str, port: int, sign_in_link: bool, **options: Any) -> None:
        if sign_in_link:
            self.print_sign_in_link(host, port)
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

    def print_sign_in_link(self, host: str, port: int) -> None:
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        base = f"http://{f'[{shown_host}]' if ':' in shown_host else shown_host}:{port}"
        link = first_run_sign_in_link()
        if link is None:
            self.stdout.write(f"\n    Open {base}/ and sign in as an operator at {base}{reverse('sign-in')}\n\n")
            return
        name, key = link
        minutes = round(settings.SIGN_IN_LINK_TTL_SECS / 60)
        self.stdout.write(
            f"\n    To operate as '{name}', open this link (it signs one browser in, within {minutes} minutes):\n"
            f"        {base}/?token={key}\n"
            f"    Listeners open {base}/\n\n"
        )
