"""A supervised loop: a failure is logged and the loop restarted with backoff; its status says so."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from transcriber_site.lib import supervise
from transcriber_site.lib.supervise import Supervised, statuses


async def test_a_failing_loop_is_restarted_with_a_growing_backoff(monkeypatch, caplog):
    monkeypatch.setattr(supervise, "FIRST_BACKOFF_SECS", 0.05)
    starts: list[float] = []
    loop = asyncio.get_running_loop()
    fourth = asyncio.Event()

    async def flaky(supervised: Supervised) -> None:
        starts.append(loop.time())
        if len(starts) == 4:
            fourth.set()
        if len(starts) <= 3:
            raise RuntimeError(f"failure {len(starts)}")
        while True:
            supervised.beat()
            await asyncio.sleep(0.01)

    task = Supervised("flaky", flaky, beat_every=0.01).start()
    await asyncio.wait_for(fourth.wait(), 5)
    await asyncio.sleep(0.05)

    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2  # 0.05, 0.1, 0.2: doubling
    status = statuses()["flaky"]
    assert status["alive"] is True
    assert status["restarts"] == 3
    assert status["last_error"] == "RuntimeError: failure 3"
    assert sum("flaky failed" in r.message for r in caplog.records) == 3
    await task.stop()
    assert "flaky" not in statuses()


async def test_a_loop_that_stops_beating_is_not_alive(monkeypatch):
    monkeypatch.setattr(supervise, "BEAT_GRACE_SECS", 0.05)

    async def stuck(supervised: Supervised) -> None:
        await asyncio.Event().wait()  # a database call that never comes back

    task = Supervised("stuck", stuck, beat_every=0.05).start()
    await asyncio.sleep(0.02)
    assert statuses()["stuck"]["alive"] is True
    await asyncio.sleep(0.15)
    assert statuses()["stuck"]["alive"] is False
    await task.stop()


async def test_a_loop_backing_off_is_not_alive(monkeypatch):
    monkeypatch.setattr(supervise, "FIRST_BACKOFF_SECS", 10.0)

    async def broken(supervised: Supervised) -> None:
        raise OSError("no database")

    task = Supervised("broken", broken).start()
    await asyncio.sleep(0.05)
    status = statuses()["broken"]
    await task.stop()

    assert status["alive"] is False
    assert status["last_error"] == "OSError: no database"


@pytest.mark.django_db(transaction=True)
async def test_health_lists_the_supervised_loops_of_the_process(settings, async_operator_client):
    from sessions_app.lifecycle import SessionsRuntime

    settings.REDIS_URL = ""
    runtime = SessionsRuntime()
    await runtime.start()
    try:
        await asyncio.sleep(0.1)
        health = (await async_operator_client.get("/api/health")).json()  # details are the operators'
    finally:
        await runtime.stop()

    assert set(health["supervised"]) == {"listener-heartbeat", "worker-heartbeat", "worker-intake"}
    assert all(loop["alive"] for loop in health["supervised"].values())
