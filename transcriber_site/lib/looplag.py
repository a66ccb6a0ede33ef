"""How late the event loop runs what is due: the lag every WebRTC packet and WebSocket message waits.

`LoopLagProbe` sleeps `interval` seconds again and again on the loop and records how
late each wake-up came (the loop was busy with something else, or waited for the GIL
or a core). `stats()` gives the percentiles of the wake-ups of the last `window`
seconds, and the share of a core the loop's thread used over them, for `/api/health`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class LoopLagProbe:
    def __init__(self, interval: float = 0.05, window: float = 30.0) -> None:
        self.interval = interval
        self.window = window
        # (loop time, seconds late, CPU seconds of the loop's thread) of each wake-up, newest last
        self.wakeups: deque[tuple[float, float, float]] = deque(maxlen=round(window / interval) + 1)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start probing the running loop (again, if a previous loop's probe was stopped)."""
        if self.task is None or self.task.done() or self.task.get_loop() is not asyncio.get_running_loop():
            self.wakeups.clear()
            self.task = asyncio.create_task(self._run(), name="loop-lag-probe")

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.wakeups.append((now, max(now - due, 0.0), time.thread_time()))

    def stats(self) -> dict[str, float | int]:
        """p50, p99 and max of the lag in ms over the last `window` seconds, how many wake-ups
        they cover, and the loop thread's CPU over them in percent of one core."""
        latest = self.wakeups[-1][0] if self.wakeups else 0.0
        recent = [w for w in self.wakeups if w[0] >= latest - self.window]
        lags = sorted(lag for _, lag, _ in recent)
        if len(recent) < 2:
            return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "samples": len(recent), "loop_cpu_pct": 0.0}

        def percentile(q: float) -> float:
            return round(lags[round(q * (len(lags) - 1))] * 1000, 2)

        (t0, _, cpu0), (t1, _, cpu1) = recent[0], recent[-1]
        return {
            "p50_ms": percentile(0.5),
            "p99_ms": percentile(0.99),
            "max_ms": percentile(1.0),
            "samples": len(recent),
            "loop_cpu_pct": round((cpu1 - cpu0) / (t1 - t0) * 100, 1),
        }


probe = LoopLagProbe()
