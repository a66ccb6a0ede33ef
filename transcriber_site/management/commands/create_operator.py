from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from transcriber_site.models import ApiToken
from transcriber_site.operators import GROUP, make_operator


class Command(BaseCommand):
    help = (
        f"Make NAME an operator (creating the user if needed; it joins the {GROUP} group). With --token, "
        "print a new API token for it alone on the last line: scripts send it as `Authorization: Bearer <token>`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the operator's user name")
        parser.add_argument("--token", action="store_true", help="issue a new API token and print it")

    def handle(self, *args: Any, name: str, token: bool, **options: Any) -> None:
        name = name.strip()
        if not name:
            raise CommandError("The operator needs a name.")
        user, created = make_operator(name)
        self.stdout.write(f"{'created' if created else 'updated'} operator {name}")
        if token:
            _, key = ApiToken.issue(user, name="create_operator")
            self.stdout.write(key)
