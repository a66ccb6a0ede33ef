"""One stream's bad request fails that stream alone, and never the inference thread."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from models_app import batching
from models_app.batching import LIVE, BatchRunner, PassFailed
from models_app.engines.base import Engine, PassRequest, PassResult
from models_app.streaming import Word


class Picky(Engine):
    """Transcribes a request to its `context`; a context of "boom" raises, "short" drops a result.

    The first call blocks until `release` is set, so that the requests sent meanwhile
    queue up and go together in one batch.
    """

    max_batch = 8

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()  # the first call has begun (and holds the thread)
        self.calls: list[list[str]] = []

    @classmethod
    def missing_files(cls, location: Path | str) -> str | None:
        return None

    def transcribe(self, requests: list[PassRequest]) -> list[PassResult]:
        if not self.calls:
            self.entered.set()
            self.release.wait(10)
        self.calls.append([r.context for r in requests])
        if any(r.context == "boom" for r in requests):
            raise RuntimeError("boom")
        results = [PassResult([Word(" " + r.context, 0.0, 0.1)]) for r in requests]
        if any(r.context == "short" for r in requests):
            return results[:-1]
        return results


def request(context: str) -> PassRequest:
    return PassRequest(audio=np.zeros(1600, np.float32), context=context)


def run_together(runner: BatchRunner, engine: Picky, contexts: list[str]) -> list[object]:
    """Send `contexts` while the thread is held, so they make one batch; each call's result or exception."""
    with ThreadPoolExecutor(len(contexts) + 1) as pool:
        first = pool.submit(runner.run, request("first"))
        assert engine.entered.wait(10)
        futures = [pool.submit(runner.run, request(c)) for c in contexts]
        while len(runner._waiting) < len(contexts):
            threading.Event().wait(0.01)
        engine.release.set()
        first.result(10)
        out: list[object] = []
        for future in futures:
            try:
                out.append(future.result(10).words[0].text.strip())
            except Exception as exc:
                out.append(exc)
        return out


@pytest.mark.parametrize("culprit", ["boom", "short"])
def test_one_bad_request_fails_only_its_own_stream(culprit):
    engine = Picky()
    runner = BatchRunner(engine, "picky")
    contexts = ["a", "b", culprit, "c", "d"]

    answers = run_together(runner, engine, contexts)

    assert engine.calls[1] == contexts  # they did go as one batch
    assert answers[:2] == ["a", "b"] and answers[3:] == ["c", "d"]
    assert isinstance(answers[2], Exception)
    assert runner.stats.failed == 1
    # the inference thread is alive: the next pass is answered
    assert runner.run(request("after")).words[0].text.strip() == "after"


def test_a_pass_that_never_returns_times_out_with_a_sentence(monkeypatch):
    engine = Picky()  # blocks on its first call until released
    runner = BatchRunner(engine, "stuck")
    monkeypatch.setitem(batching.TIMEOUT_SECS, LIVE, 0.2)

    with pytest.raises(PassFailed, match="gave no result within 0 s"):
        runner.run(request("first"))
    engine.release.set()
    assert runner.run(request("later")).words[0].text.strip() == "later"


def test_a_request_that_gave_up_is_not_run():
    engine = Picky()
    runner = BatchRunner(engine, "skips")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(runner.run, request("first"))
        assert engine.entered.wait(10)
        abandoned: Future[PassResult] = Future()
        abandoned.cancel()
        with runner._ready:
            runner._waiting.append((LIVE, -1, request("abandoned"), abandoned))
        engine.release.set()
        first.result(10)
    assert runner.run(request("next")).words[0].text.strip() == "next"
    assert all("abandoned" not in call for call in engine.calls)
