from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from transcriber_site.operators import first_run_sign_in_link


class Command(BaseCommand):
    help = (
        "Print a one-time sign-in link for the local operator (made first where there is no operator), "
        "for a server started without --sign-in-link, e.g. behind a proxy (make cluster)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="where browsers open the server, e.g. http://127.0.0.1:8000")

    def handle(self, *args: Any, url: str, **options: Any) -> None:
        link = first_run_sign_in_link()
        if link is None:
            raise CommandError("Operators were made by hand: they sign in on the sign-in page with their password.")
        name, key = link
        minutes = round(settings.SIGN_IN_LINK_TTL_SECS / 60)
        self.stdout.write(
            f"To operate as '{name}', open this link (it signs one browser in, within {minutes} minutes):"
        )
        self.stdout.write(f"    {url.rstrip('/')}/?token={key}")
