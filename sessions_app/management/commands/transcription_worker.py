from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app.models import TranscriptionSession
from sessions_app.runner import SessionWorker


class Command(BaseCommand):
    help = (
        "Run transcription sessions taken from the channel layer (scale-out with REDIS_URL). "
        "Start as many as you like, on any machine that sees the database and MEDIA_DIR."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--capacity", type=int, default=0, help="sessions at most (default: WORKER_CAPACITY)")

    def handle(self, *args: Any, capacity: int, **options: Any) -> None:
        if not settings.REDIS_URL:
            raise CommandError(
                "REDIS_URL is not set. Without it the server runs sessions itself (the embedded default); "
                "separate workers need a Redis channel layer shared with the web processes."
            )
        asyncio.run(self.serve(capacity))

    async def serve(self, capacity: int) -> None:
        worker = SessionWorker(capacity=capacity or None)
        stopped = await database_sync_to_async(TranscriptionSession.stop_left_running)(
            "The worker that ran this session is gone.", only_stale=True
        )
        if stopped:
            self.stdout.write(f"stopped sessions whose worker is gone: {stopped}")
        self.stdout.write(f"worker {worker.id} taking sessions (capacity {worker.capacity})")
        serving = asyncio.create_task(worker.serve())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, serving.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        await worker.shutdown("The worker shut down.")
        self.stdout.write(f"worker {worker.id} stopped")
