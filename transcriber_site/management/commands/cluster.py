from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from transcriber_site.cluster import Cluster


class Command(BaseCommand):
    help = (
        "Run the scale-out deployment on this machine until Ctrl-C (make cluster): a throwaway PostgreSQL "
        "and Redis, web processes behind nginx, transcription workers, all sharing MEDIA_DIR."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="where nginx listens (0.0.0.0 for all)")
        parser.add_argument("--port", type=int, default=settings.PORT, help="nginx's port (default: PORT, 8000)")
        parser.add_argument("--webs", type=int, default=2, help="web processes (default 2)")
        parser.add_argument("--workers", type=int, default=2, help="transcription workers (default 2)")
        parser.add_argument("--dir", default=".cluster", help="where the processes' logs go (default .cluster)")

    def handle(self, *args: Any, host: str, port: int, webs: int, workers: int, dir: str, **options: Any) -> None:
        root = Path(dir).resolve()
        signal.signal(signal.SIGTERM, _stop)
        self.stdout.write(
            f"starting PostgreSQL, Redis, {webs} web processes, {workers} workers and nginx; logs in {root}"
        )
        with Cluster(root, Path(settings.MEDIA_DIR), webs=webs, workers=workers, listen=f"{host}:{port}") as cluster:
            local = f"http://127.0.0.1:{port}" if host in ("0.0.0.0", "::") else cluster.url
            self.stdout.write(cluster.manage("sign_in_link", local).rstrip())
            self.stdout.write(f"Listeners open {local}/  (web processes: {', '.join(cluster.web_urls)})")
            self.stdout.write("The database lives as long as this command: Ctrl-C stops everything and removes it.")
            try:
                self.watch(cluster)
            except KeyboardInterrupt:
                self.stdout.write("stopping")

    def watch(self, cluster: Cluster) -> None:
        """Say so when a process dies (nothing restarts it: this is for trying, not for production)."""
        reported: set[str] = set()
        while True:
            for child in cluster.children():
                if not child.alive() and child.name not in reported:
                    reported.add(child.name)
                    self.stderr.write(f"{child.name} exited; its log: {child.log_path}")
            time.sleep(1)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
