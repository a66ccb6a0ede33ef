from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError, CommandParser

from transcriber_site.models import ApiToken


class Command(BaseCommand):
    help = (
        "Make NAME an operator (creating the user if needed). With --token, print a new API token "
        "for it alone on the last line: scripts send it as `Authorization: Bearer <token>`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the operator's user name")
        parser.add_argument("--token", action="store_true", help="issue a new API token and print it")

    def handle(self, *args: Any, name: str, token: bool, **options: Any) -> None:
        name = name.strip()
        if not name:
            raise CommandError("The operator needs a name.")
        users = get_user_model()
        user, created = users.objects.get_or_create(username=name)
        if created:
            user.set_unusable_password()  # signs in with a token link; `manage.py changepassword` sets one
            user.save()
        operate = Permission.objects.get(codename="operate", content_type__app_label="transcriber_site")
        user.user_permissions.add(operate)
        self.stdout.write(f"{'created' if created else 'updated'} operator {name}")
        if token:
            _, key = ApiToken.issue(user, name="create_operator")
            self.stdout.write(key)
