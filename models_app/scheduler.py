"""One pass scheduler per model, shared by all its live streams: who is transcribed next.

Audio intake never waits for inference: a stream's `push_audio` only takes the audio and
says the stream may be due. The model's inference threads (one per replica) each take
the next batch by these rules, in this order:

1. Queued requests at LIVE priority: a session's last pass when its audio ends.
2. Due streams, the most urgent first, up to the engine's batch size. A stream is due
   once `interval_secs` of audio came since its last pass and it has unconfirmed speech.
   Its urgency is the age of its oldest unconfirmed audio: the words a listener has
   waited longest for go first. A stream that missed a turn is older at the next one,
   and its pass covers a longer buffer; nobody is starved, and under overload every
   stream's passes stretch alike.
3. Queued BACKGROUND requests: offline passes over finished recordings.

Overload is seen, not guessed. Over the last `WINDOW_SECS` the scheduler measures how
busy its threads were, how often its streams' passes came, and how late final words were
(the stream's newest audio minus the word's end, when the word became final). A stream
whose passes come far apart is stretched (the policy decides: `StreamingPolicy.stretched`):
it sends no partials, which passes this late would only make stale.
`admission()` refuses a new stream when the measured p95 lateness, plus what one more
stream would add to every stream's period while the threads are saturated, passes the goal.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from models_app.batching import BACKGROUND, LIVE, BatchRunner, Waiting
from models_app.engines.base import Engine, PassRequest, PassResult

WINDOW_SECS = 20.0  # measurements older than this are forgotten
SATURATED = 0.9  # threads busier than this cannot take one more stream's passes for free
MIN_WORDS = 20  # fewer final words in the window than this say nothing about lateness yet


class Scheduled(Protocol):
    """A stream as the scheduler drives it (`models_app.policy.StreamingPolicy`)."""

    def due(self) -> float | None: ...
    def begin_pass(self) -> Any: ...
    def end_pass(self, begun: Any, result: PassResult | BaseException) -> Any: ...
    @property
    def stretched(self) -> bool: ...
    @property
    def now(self) -> float: ...


@dataclass
class Admission:
    admits: bool
    reason: str  # a sentence: why not, or what was measured


class PassScheduler(BatchRunner):
    def __init__(self, engine: Engine, name: str, goal_secs: float = 2.5) -> None:
        self.goal_secs = goal_secs
        self._streams: set[Scheduled] = set()
        self._busy: deque[tuple[float, float]] = deque()  # (ended at, thread-seconds) per batch
        self._late: deque[tuple[float, float]] = deque()  # (at, seconds) per final word
        self._passes: deque[float] = deque()  # when each stream pass began
        self._since = time.monotonic()  # measured windows are shorter at first
        super().__init__(engine, name)

    # --- streams ----------------------------------------------------------------------------

    def add(self, stream: Scheduled) -> None:
        with self._ready:
            self._streams.add(stream)
            self._ready.notify()

    def remove(self, stream: Scheduled) -> None:
        """After this returns the stream's pass has begun, or never will."""
        with self._ready:
            self._streams.discard(stream)

    def _work(self) -> list[Waiting]:
        return self._queued(LIVE) or self._due_passes() or self._queued(BACKGROUND)

    def _due_passes(self) -> list[Waiting]:
        due = [(urgency, stream) for stream in self._streams if (urgency := stream.due()) is not None]
        due.sort(key=lambda pair: -pair[0])
        now = time.monotonic()
        batch: list[Waiting] = []
        for _, stream in due[: self.engine.max_batch]:
            begun = stream.begin_pass()
            future: Future[PassResult] = Future()
            future.set_running_or_notify_cancel()
            future.add_done_callback(self._finisher(stream, begun))
            batch.append((begun.request, future))
            self._passes.append(now)
        return batch

    def _finisher(self, stream: Scheduled, begun: Any) -> Callable[[Future[PassResult]], None]:
        def finish(future: Future[PassResult]) -> None:
            chunk = stream.end_pass(begun, future.exception() or future.result())
            now = time.monotonic()
            with self._ready:
                self._late.extend((now, stream.now - word.end) for s in chunk.finals for word in s.words)

        return finish

    def _record(self, batch: list[Waiting], started: float, ended: float) -> None:
        super()._record(batch, started, ended)
        with self._ready:
            self._busy.append((ended, ended - started))

    # --- what was measured --------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        """The last WINDOW_SECS: streams, threads' busy share, passes per stream per second, final-word lateness."""
        with self._ready:
            now = time.monotonic()
            for measured in (self._busy, self._late):
                while measured and measured[0][0] < now - WINDOW_SECS:
                    measured.popleft()
            while self._passes and self._passes[0] < now - WINDOW_SECS:
                self._passes.popleft()
            streams = len(self._streams)
            window = max(min(WINDOW_SECS, now - self._since), 1e-3)
            late = np.array([seconds for _, seconds in self._late])
            return {
                "streams": streams,
                "stretched": sum(1 for stream in self._streams if stream.stretched),
                "busy": round(sum(secs for _, secs in self._busy) / (window * max(self.engine.parallel, 1)), 3),
                "pass_period_secs": round(streams * window / len(self._passes), 2) if self._passes else None,
                "final_p50_secs": round(float(np.percentile(late, 50)), 2) if len(late) else None,
                "final_p95_secs": round(float(np.percentile(late, 95)), 2) if len(late) else None,
                "final_words": len(late),
            }

    def admission(self) -> Admission:
        """Whether one more stream keeps the final words within the goal, as measured."""
        load = self.load()
        streams, p95 = load["streams"], load["final_p95_secs"]
        if self.goal_secs <= 0:
            return Admission(True, "admission control is off (ADMISSION_P95_SECS=0)")
        if not streams or p95 is None or load["final_words"] < MIN_WORDS:
            return Admission(True, "too little measured yet to refuse")
        added = load["pass_period_secs"] / streams if load["busy"] >= SATURATED and load["pass_period_secs"] else 0.0
        if p95 + added > self.goal_secs:
            return Admission(
                False,
                f"{self.name} is at capacity: with {streams} live sessions, final subtitles come "
                f"{p95:.1f} s after the speech (p95 over the last {WINDOW_SECS:.0f} s), and one more "
                f"would pass the {self.goal_secs:.1f} s goal",
            )
        return Admission(True, f"final subtitles come {p95:.1f} s after the speech (p95), within the goal")


__all__ = ["BACKGROUND", "LIVE", "Admission", "PassRequest", "PassScheduler"]
