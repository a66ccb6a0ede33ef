"""Admission control: a new session is refused when no worker can take it without making
every session's subtitles late.

Each worker writes what its models' pass schedulers measured (`PassScheduler.load()` and
`admission()`) with its heartbeat, into one `WorkerLoad` row. Creating a session reads
the rows of the workers that beat recently: it is refused (429, with the measured
reason) when every such worker is full or says that one more stream of the model would
pass the latency goal. A worker that has not loaded the model has room for it. With no
recent row (no worker has beaten yet) nothing is refused here: the session waits for a
worker, and `MAX_CONCURRENT_SESSIONS` still bounds the whole server.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class WorkerLoad(models.Model):
    worker_id = models.CharField(max_length=100, unique=True)
    beat_at = models.DateTimeField()
    capacity = models.PositiveIntegerField()
    sessions = models.PositiveIntegerField()
    # per model id: the scheduler's load, "admits" and "reason"
    models_load = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"{self.worker_id}: {self.sessions}/{self.capacity}"

    @classmethod
    def record(cls, worker_id: str, capacity: int, sessions: int, models_load: dict[str, Any]) -> None:
        cls.objects.update_or_create(
            worker_id=worker_id,
            defaults={
                "beat_at": timezone.now(),
                "capacity": capacity,
                "sessions": sessions,
                "models_load": models_load,
            },
        )

    @classmethod
    def gone(cls, worker_id: str) -> None:
        """A worker that stops says so: its row no longer counts."""
        cls.objects.filter(worker_id=worker_id).delete()

    @classmethod
    def recent(cls) -> models.QuerySet[WorkerLoad]:
        since = timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_TIMEOUT_SECS)
        return cls.objects.filter(beat_at__gte=since)

    def refusal(self, model_id: str) -> str | None:
        """Why this worker cannot take a session of `model_id`, or None when it can."""
        if self.sessions >= self.capacity:
            return f"its workers are full ({self.sessions} of {self.capacity} sessions, WORKER_CAPACITY)"
        load = self.models_load.get(model_id)
        if load is None or load["admits"]:
            return None
        return str(load["reason"])


def refusal(model_id: str) -> str | None:
    """A sentence saying why no worker can take a new session of `model_id` now, or None."""
    reasons = [worker.refusal(model_id) for worker in WorkerLoad.recent()]
    if not reasons or not all(reasons):
        return None
    return f"The server cannot take another session now: {reasons[0]}. Stop one or wait for one to end."


def loads() -> list[dict[str, Any]]:
    """The recent workers' loads, for /api/health."""
    return [
        {"worker": w.worker_id, "sessions": w.sessions, "capacity": w.capacity, "models": w.models_load}
        for w in WorkerLoad.recent().order_by("worker_id")
    ]
