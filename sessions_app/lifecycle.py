"""Sessions at web server start and stop.

Embedded default (no REDIS_URL): this process is also the worker. At start, every
session a previous process left live is stopped (that process, and its worker, are
gone); then the worker starts taking sessions. With REDIS_URL, workers are separate
processes: only sessions whose worker stopped beating are stopped at start, and this
process sweeps for orphans (so sessions never wait forever if every worker dies).
Each of these loops is supervised: an error is logged and the loop restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from sessions_app.models import LISTENER_HEARTBEAT_SECS, Listener, TranscriptionSession
from sessions_app.runner import SessionWorker
from sessions_app.webrtc import SERVER_ID, hub
from transcriber_site.lib.looplag import probe
from transcriber_site.lib.supervise import Supervised

log = logging.getLogger(__name__)


class SessionsRuntime:
    def __init__(self) -> None:
        self.worker: SessionWorker | None = None
        self.task: asyncio.Task[None] | None = None  # the embedded worker
        self.tasks: list[Supervised] = []

    @property
    def embedded(self) -> bool:
        return not settings.REDIS_URL

    async def start(self) -> None:
        probe.start()
        stopped = await database_sync_to_async(TranscriptionSession.stop_left_running)(
            "The server restarted; a session cannot outlive the process that ran it.", only_stale=not self.embedded
        )
        if stopped:
            log.info("stopped sessions left running by a previous process: %s", stopped)
        if self.embedded:  # no other web process: every listener row is a previous process's
            await database_sync_to_async(Listener.objects.all().delete)()
        self.tasks = [Supervised("listener-heartbeat", self._keep_listeners, LISTENER_HEARTBEAT_SECS).start()]
        if self.embedded:
            self.worker = SessionWorker(worker_id=None)
            self.task = asyncio.create_task(self.worker.serve(), name="embedded-worker")
        else:
            self.tasks.append(Supervised("orphan-sweeper", self._sweep, settings.WORKER_HEARTBEAT_SECS).start())

    async def _keep_listeners(self, supervised: Supervised) -> None:
        while True:
            await database_sync_to_async(Listener.keep_alive)(SERVER_ID)
            supervised.beat()
            await asyncio.sleep(LISTENER_HEARTBEAT_SECS)

    async def _sweep(self, supervised: Supervised) -> None:
        while True:
            await asyncio.sleep(settings.WORKER_HEARTBEAT_SECS)
            await database_sync_to_async(TranscriptionSession.sweep_orphans)()
            supervised.beat()

    async def stop(self) -> None:
        probe.stop()
        await hub.close_all()
        if self.worker is not None:
            await self.worker.shutdown("The server shut down.")
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        for supervised in self.tasks:
            await supervised.stop()


runtime = SessionsRuntime()
