from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from media_app.scan import scan_media_dir


class Command(BaseCommand):
    help = (
        "Register audio files dropped into MEDIA_DIR by hand, mark rows whose files are gone as missing "
        "(found again when they are back), and remove partial files that no live upload holds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Delete the rows of recordings whose files are missing (their sessions keep only the name).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = scan_media_dir(prune=options["prune"])
        for line in report.lines():
            self.stdout.write(line)
