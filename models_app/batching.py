"""Many streams, one model: passes from all streams are gathered into batches.

Each engine gets `engine.parallel` inference threads (one per model replica the engine
can run at once). A stream submits its pass and waits; while batches run, the passes of
other streams queue up and go together in the next call. Nobody waits for a batch to
fill: under light load a pass runs alone at once.

Work has a priority: live passes (`LIVE`) always go before background work such as the
offline pass over a finished recording (`BACKGROUND`), and the two never share a batch,
so a long offline chunk never slows a live stream's call down.

One request never fails another: when a batch fails (or answers with the wrong number
of results), each of its requests runs again alone, so only the one at fault gets the
error. Whatever a request does, the inference thread lives on, and a caller never
waits longer than its priority's timeout.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from models_app.engines.base import Engine, PassRequest, PassResult

log = logging.getLogger(__name__)

LIVE = 0
BACKGROUND = 10
# A caller gives up after this long (waiting in the queue included): a live pass waits
# behind at most a few batches; background work waits behind every live pass.
TIMEOUT_SECS = {LIVE: 60.0, BACKGROUND: 900.0}


class PassFailed(Exception):
    """A pass that could not be made; the message is a sentence for the session's error."""


@dataclass
class BatchStats:
    calls: int = 0
    passes: int = 0
    failed: int = 0  # requests that got an error
    busy_secs: float = 0.0

    @property
    def mean_batch(self) -> float:
        return self.passes / self.calls if self.calls else 0.0


Waiting = tuple[PassRequest, "Future[PassResult]"]


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
        timeout = TIMEOUT_SECS.get(priority, TIMEOUT_SECS[BACKGROUND])
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            future.cancel()  # still queued: it is dropped; running: its result is thrown away
            raise PassFailed(f"The model {self.name} gave no result within {timeout:.0f} s.") from None

    def wake(self) -> None:
        """Work may be due that is not in the queue (the scheduler's streams); look again."""
        with self._ready:
            self._ready.notify()

    def _next_batch(self) -> list[Waiting]:
        with self._ready:
            while True:
                batch = self._work()
                if batch:
                    return batch
                if not self._waiting:
                    self._ready.wait()

    def _work(self) -> list[Waiting]:
        """The next batch to run, or nothing (called holding `_ready`)."""
        return self._queued(LIVE) or self._queued(BACKGROUND)

    def _queued(self, priority: int) -> list[Waiting]:
        """Queued requests of `priority` or more urgent, the most urgent first (called holding `_ready`)."""
        batch: list[Waiting] = []
        if not self._waiting or self._waiting[0][0] > priority:
            return batch
        first = self._waiting[0][0]
        while self._waiting and self._waiting[0][0] == first and len(batch) < self.engine.max_batch:
            _, _, request, future = heapq.heappop(self._waiting)
            if future.set_running_or_notify_cancel():  # False: its caller has given up
                batch.append((request, future))
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            started = time.monotonic()
            try:
                self._answer(batch)
            except BaseException as exc:  # nothing a request does may end this thread
                log.exception("%s: the inference thread caught an error it did not expect", self.name)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(PassFailed(f"The model {self.name} failed: {exc!r}"))
            finally:
                self._record(batch, started, time.monotonic())

    def _record(self, batch: list[Waiting], started: float, ended: float) -> None:
        with self._ready:
            self.stats.calls += 1
            self.stats.passes += len(batch)
            self.stats.busy_secs += ended - started

    def _answer(self, batch: list[Waiting]) -> None:
        try:
            results = self._transcribe([request for request, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                log.warning("%s: a pass failed: %r", self.name, exc)
                with self._ready:
                    self.stats.failed += 1
                batch[0][1].set_exception(exc)
                return
            log.warning("%s: a batch of %d passes failed (%r); running each alone", self.name, len(batch), exc)
            for one in batch:
                self._answer([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _transcribe(self, requests: list[PassRequest]) -> list[PassResult]:
        results = self.engine.transcribe(requests)
        if not isinstance(results, list) or len(results) != len(requests):
            got = len(results) if isinstance(results, list) else type(results).__name__
            raise PassFailed(f"The model {self.name} answered {got} results for {len(requests)} passes.")
        return results
