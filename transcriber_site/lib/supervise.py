"""Long-lived background tasks with an owner: a failure is logged, the task restarted, its liveness shown.

A heartbeat, a sweeper or a worker's intake loop that dies on one database error
("database is locked", a dropped connection) would otherwise stop silently while the
process looks alive. `Supervised` runs such a loop, logs whatever ends it, starts it
again after a backoff that doubles up to MAX_BACKOFF_SECS (and starts small again once
the loop has run well for a while), and says in `status()` whether it is alive: running,
and, for loops that promise a round every `beat_every` seconds, seen to beat lately.
`/api/health` shows the status of every supervised task of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

FIRST_BACKOFF_SECS = 0.5
MAX_BACKOFF_SECS = 30.0
STEADY_SECS = 60.0  # a loop that ran this long before failing starts again after the first backoff
# A loop that beats every N s counts as alive until it has missed this much beyond N
# (a database call may wait up to its 30 s lock timeout).
BEAT_GRACE_SECS = 35.0

_running: dict[str, Supervised] = {}


class Supervised:
    def __init__(
        self, name: str, loop: Callable[[Supervised], Awaitable[None]], beat_every: float | None = None
    ) -> None:
        self.name = name
        self.loop = loop
        self.beat_every = beat_every
        self.restarts = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.last_beat = time.monotonic()
        self.backing_off = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Supervised:
        self.task = asyncio.create_task(self._own(), name=self.name)
        _running[self.name] = self
        return self

    def beat(self) -> None:
        """Called by the loop once per round: it is making progress."""
        self.last_beat = time.monotonic()

    async def stop(self) -> None:
        if _running.get(self.name) is self:
            del _running[self.name]
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _own(self) -> None:
        backoff = FIRST_BACKOFF_SECS
        while True:
            began = time.monotonic()
            self.beat()
            try:
                await self.loop(self)
                raise RuntimeError("the loop returned")  # these loops run until cancelled
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - began >= STEADY_SECS:
                    backoff = FIRST_BACKOFF_SECS
                self.restarts += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                self.last_error_at = datetime.now(UTC)
                log.exception("%s failed (restart %d in %.1f s)", self.name, self.restarts, backoff)
            self.backing_off = True
            await asyncio.sleep(backoff)
            self.backing_off = False
            backoff = min(backoff * 2, MAX_BACKOFF_SECS)

    @property
    def alive(self) -> bool:
        if self.task is None or self.task.done() or self.backing_off:
            return False
        if self.beat_every is None:
            return True
        return time.monotonic() - self.last_beat <= self.beat_every + BEAT_GRACE_SECS

    def status(self) -> dict[str, Any]:
        return {
            "alive": self.alive,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "beat_age_secs": round(time.monotonic() - self.last_beat, 1) if self.beat_every is not None else None,
        }


def statuses() -> dict[str, dict[str, Any]]:
    """Every supervised task of this process, by name."""
    return {name: task.status() for name, task in sorted(_running.items())}
