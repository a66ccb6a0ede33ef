"""Many streams, one model: passes from all streams are gathered into batches.

Each engine gets `engine.parallel` inference threads (one per model replica the engine
can run at once). A stream submits its pass and waits; while batches run, the passes of
other streams queue up and go together in the next call. Nobody waits for a batch to
fill: under light load a pass runs alone at once.

Work has a priority: live passes (`LIVE`) always go before background work such as the
offline pass over a finished recording (`BACKGROUND`), and the two never share a batch,
so a long offline chunk never slows a live stream's call down.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from models_app.engines.base import Engine, PassRequest, PassResult

log = logging.getLogger(__name__)

LIVE = 0
BACKGROUND = 10


@dataclass
class BatchStats:
    calls: int = 0
    passes: int = 0
    busy_secs: float = 0.0

    @property
    def mean_batch(self) -> float:
        return self.passes / self.calls if self.calls else 0.0


class BatchRunner:
    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.stats = BatchStats()
        # a heap of (priority, arrival, request, future): the most urgent, then the oldest, first
        self._waiting: list[tuple[int, int, PassRequest, Future[PassResult]]] = []
        self._arrivals = itertools.count()
        self._ready = threading.Condition()
        for i in range(max(engine.parallel, 1)):
            threading.Thread(target=self._loop, name=f"inference-{name}-{i}", daemon=True).start()

    def run(self, request: PassRequest, priority: int = LIVE) -> PassResult:
        """Transcribe one buffer, batched with whatever other work of its priority waits meanwhile."""
        future: Future[PassResult] = Future()
        with self._ready:
            heapq.heappush(self._waiting, (priority, next(self._arrivals), request, future))
            self._ready.notify()
        return future.result()

    def _next_batch(self) -> list[tuple[PassRequest, Future[PassResult]]]:
        with self._ready:
            while not self._waiting:
                self._ready.wait()
            priority = self._waiting[0][0]
            batch: list[tuple[PassRequest, Future[PassResult]]] = []
            while self._waiting and self._waiting[0][0] == priority and len(batch) < self.engine.max_batch:
                _, _, request, future = heapq.heappop(self._waiting)
                batch.append((request, future))
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            started = time.perf_counter()
            try:
                results = self.engine.transcribe([request for request, _ in batch])
            except Exception as exc:
                log.exception("%s: a batch of %d passes failed", self.name, len(batch))
                for _, future in batch:
                    future.set_exception(exc)
                continue
            finally:
                with self._ready:
                    self.stats.calls += 1
                    self.stats.passes += len(batch)
                    self.stats.busy_secs += time.perf_counter() - started
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)
