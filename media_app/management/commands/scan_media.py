from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from media_app.scan import scan_media_dir


class Command(BaseCommand):
    help = "Register audio files dropped into MEDIA_DIR by hand and drop rows whose files vanished."

    def handle(self, *args: Any, **options: Any) -> None:
        report = scan_media_dir()
        for line in report.lines():
            self.stdout.write(line)
