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
`admission()` refuses a new stream when the final words' p95 lateness would pass the goal
with one more stream. The window's p95 lags a fast ramp, so the prediction takes the
larger of two figures. One is the window's p95, moved by the period one more stream
would bring to the passes of the last `RECENT_SECS` while the replicas are saturated.
The other is where the lateness settles: a word waits up to the policy's
`confirm_after_secs`, then for its stream's turn, which comes once every stream has had
a pass at what a pass costs now, then for its pass. It also refuses while some stream
is stretched, which comes seconds before its late words do.
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
from models_app.engines.base import Engine, PassResult

WINDOW_SECS = 10.0  # measurements older than this are forgotten
RECENT_SECS = 3.0  # the pass period now, for the prediction (the window's lateness lags the load)
SATURATED = 0.9  # threads busier than this cannot take one more stream's passes for free
MIN_WORDS = 20  # fewer final words in the window than this say nothing about lateness yet
MIN_PASSES = 10  # nor fewer passes about what a pass costs


class Scheduled(Protocol):
    """A stream as the scheduler drives it (`models_app.policy.StreamingPolicy`)."""

    def due(self) -> float | None: ...
    def begin_pass(self) -> Any: ...
    def end_pass(self, begun: Any, result: PassResult | BaseException) -> Any: ...
    @property
    def stretched(self) -> bool: ...
    @property
    def confirm_secs(self) -> float: ...
    @property
    def now(self) -> float: ...


@dataclass
class Admission:
    admits: bool
    reason: str  # a sentence: why not, or what was measured


class PassScheduler(BatchRunner):
    def __init__(self, engine: Engine, name: str) -> None:
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
            recent = sum(1 for at in self._passes if at >= now - RECENT_SECS)
            busy = sum(secs for _, secs in self._busy)
            recent_busy = sum(secs for at, secs in self._busy if at >= now - RECENT_SECS)
            late = np.array([seconds for _, seconds in self._late])
            return {
                "streams": streams,
                "stretched": sum(1 for stream in self._streams if stream.stretched),
                "busy": round(busy / (window * max(self.engine.parallel, 1)), 3),
                # what a pass costs now (passes grow dearer as the buffers of new streams grow)
                "pass_cost_secs": round(recent_busy / recent, 3) if recent >= MIN_PASSES else None,
                "confirm_secs": min((stream.confirm_secs for stream in self._streams), default=None),
                "pass_period_secs": round(streams * window / len(self._passes), 2) if self._passes else None,
                "recent_pass_period_secs": round(streams * min(RECENT_SECS, window) / recent, 2) if recent else None,
                "final_p50_secs": round(float(np.percentile(late, 50)), 2) if len(late) else None,
                "final_p95_secs": round(float(np.percentile(late, 95)), 2) if len(late) else None,
                "final_words": len(late),
            }

    def admission(self, goal_secs: float, load: dict[str, Any] | None = None) -> Admission:
        """Whether one more stream keeps the final words' p95 lateness within `goal_secs`, as measured
        (by `load()`, or the `load` the caller has just taken)."""
        load = self.load() if load is None else load
        streams, p95 = load["streams"], load["final_p95_secs"]
        if goal_secs <= 0:
            return Admission(True, "admission control is off (ADMISSION_P95_SECS=0)")
        if not streams or p95 is None or load["final_words"] < MIN_WORDS:
            return Admission(True, "too little measured yet to refuse")
        predicted = p95
        period, recent_period = load["pass_period_secs"], load["recent_pass_period_secs"]
        saturated = load["busy"] >= SATURATED and period and recent_period
        if saturated:
            # the period grows with the streams: one more makes every pass come this much later
            predicted = p95 - period + recent_period * (streams + 1) / streams
        if load["pass_cost_secs"] is not None and load["confirm_secs"] is not None:
            # where it settles (the measured p95 lags a fast ramp): a word waits up to `confirm_secs`, then
            # for its stream's turn, which comes once every stream has had one, and for its pass
            cost = load["pass_cost_secs"]
            turn = (streams + 1) * cost / max(self.engine.parallel, 1)
            if saturated:
                turn = max(turn, recent_period * (streams + 1) / streams)
            predicted = max(predicted, load["confirm_secs"] + turn + cost)
        if predicted > goal_secs:
            return Admission(
                False,
                f"{self.name} is at capacity: with {streams} live sessions, final subtitles come "
                f"{p95:.1f} s after the speech (p95 over the last {WINDOW_SECS:.0f} s), and with one more "
                f"about {predicted:.1f} s, over the {goal_secs:.1f} s goal",
            )
        if load["stretched"]:
            return Admission(
                False,
                f"{self.name} is at capacity: {load['stretched']} of its {streams} live sessions wait for "
                f"their turns (their subtitles are coming late)",
            )
        return Admission(True, f"final subtitles come {p95:.1f} s after the speech (p95), within the goal")
