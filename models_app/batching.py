"""Many streams, one model: passes from all streams are gathered into batches.

Each engine gets `engine.parallel` inference threads (one per model replica the engine
can run at once). A stream submits its pass and waits; while batches run, the passes of
other streams queue up and go together in the next call. Nobody waits for a batch to
fill: under light load a pass runs alone at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from models_app.engines.base import Engine, PassRequest, PassResult

log = logging.getLogger(__name__)


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
        self._queue: queue.SimpleQueue[tuple[PassRequest, Future[PassResult]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        for i in range(max(engine.parallel, 1)):
            threading.Thread(target=self._loop, name=f"inference-{name}-{i}", daemon=True).start()

    def run(self, request: PassRequest) -> PassResult:
        """Transcribe one buffer, batched with whatever other streams asked meanwhile."""
        future: Future[PassResult] = Future()
        self._queue.put((request, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.engine.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            started = time.perf_counter()
            try:
                results = self.engine.transcribe([request for request, _ in batch])
            except Exception as exc:
                log.exception("%s: a batch of %d passes failed", self.name, len(batch))
                for _, future in batch:
                    future.set_exception(exc)
                continue
            finally:
                with self._lock:
                    self.stats.calls += 1
                    self.stats.passes += len(batch)
                    self.stats.busy_secs += time.perf_counter() - started
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)
