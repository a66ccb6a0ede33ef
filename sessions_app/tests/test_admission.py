"""Admission control: a new session is refused with a sentence when no worker can take it
without making every session late; the workers' heartbeats carry what they measured."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from media_app.models import MediaFile
from models_app import scheduler
from models_app.registry import registry
from sessions_app.capacity import WorkerLoad, refusal
from sessions_app.models import TranscriptionSession
from sessions_app.tests.conftest import GroupListener, new_session, running_worker, start

pytestmark = pytest.mark.django_db(transaction=True)

REFUSING = {"whisper": {"streams": 9, "admits": False, "reason": "whisper is at capacity: one more would be late"}}


@pytest.fixture
def admission_on(settings):
    settings.ADMISSION_P95_SECS = 2.5


def create(client, media: MediaFile):
    body = {"model_id": "whisper", "media_id": media.id}
    return client.post("/api/sessions", json.dumps(body), content_type="application/json")


def worker(name: str, sessions: int = 1, capacity: int = 10, load=None, age_secs: float = 0.0) -> WorkerLoad:
    return WorkerLoad.objects.create(
        worker_id=name,
        beat_at=timezone.now() - timedelta(seconds=age_secs),
        capacity=capacity,
        sessions=sessions,
        models_load=load or {},
    )


def test_a_session_no_worker_can_take_is_refused_with_the_measured_reason_and_nothing_is_made(
    operator_client, make_media, admission_on
):
    media = make_media(2.0)
    worker("a", load=REFUSING)

    response = create(operator_client, media)

    assert response.status_code == 429
    assert response.json()["error"] == (
        "The server cannot take another session now: whisper is at capacity: one more would be late. "
        "Stop one or wait for one to end."
    )
    assert not TranscriptionSession.objects.exists()
    assert MediaFile.objects.count() == 1  # no live recording was begun


def test_one_worker_with_room_is_enough(operator_client, make_media, admission_on):
    media = make_media(2.0)
    worker("a", load=REFUSING)
    worker("b", load={"whisper": {"streams": 1, "admits": True, "reason": "within the goal"}})
    worker("c")  # has not loaded the model: it has room for it

    assert create(operator_client, media).status_code == 201


def test_full_workers_refuse_and_silent_ones_do_not_count(make_media, admission_on):
    worker("full", sessions=4, capacity=4)
    worker("dead", load=REFUSING, age_secs=60)  # stopped beating: it says nothing any more

    assert "workers are full (4 of 4 sessions, WORKER_CAPACITY)" in refusal("whisper")
    WorkerLoad.objects.filter(worker_id="full").delete()
    assert refusal("whisper") is None  # no worker has beaten: the session waits for one


async def test_a_worker_beats_its_measured_load_and_its_refusal_reaches_the_api(
    make_media, admission_on, settings, async_operator_client
):
    settings.WORKER_HEARTBEAT_SECS = 0.2
    media = await database_sync_to_async(make_media)(12.0)  # still playing while the test reads its beats
    session = await database_sync_to_async(new_session)(media)
    runner = registry.loaded("whisper").runner
    async with GroupListener(session.pk) as listener, running_worker() as running:
        await start(session)
        await listener.until("session.subtitle")
        row = await beat(running.id, lambda row: row.models_load.get("whisper", {}).get("streams") == 1)
        assert row.sessions == 1 and row.models_load["whisper"]["admits"]
        # the measurements say every final word comes 4 s late: the next beat refuses
        now = time.monotonic()
        with runner._ready:
            runner._late.extend((now, 4.0) for _ in range(scheduler.MIN_WORDS))
        await beat(running.id, lambda row: not row.models_load["whisper"]["admits"])
        response = await async_operator_client.post(
            "/api/sessions", json.dumps({"model_id": "whisper", "media_id": media.id}), content_type="application/json"
        )
        assert response.status_code == 429
        assert "final subtitles come 4.0 s after the speech" in response.json()["error"]
        assert (await async_operator_client.delete(f"/api/sessions/{session.pk}")).status_code == 200
        await listener.until("session.end", timeout=30)
    with runner._ready:
        runner._late.clear()
    assert not await database_sync_to_async(WorkerLoad.objects.filter(worker_id=running.id).exists)()


async def beat(worker_id: str, showing, timeout: float = 10.0) -> WorkerLoad:
    """The worker's next heartbeat row that shows what the test waits for."""
    deadline = time.monotonic() + timeout
    while True:
        row = await database_sync_to_async(WorkerLoad.objects.filter(worker_id=worker_id).first)()
        if row is not None and showing(row):
            return row
        assert time.monotonic() < deadline, f"no beat showed it in {timeout} s; the last: {row and row.models_load}"
        await asyncio.sleep(0.1)


def test_health_shows_operators_the_workers_load(operator_client, client):
    worker("a", load=REFUSING)

    shown = operator_client.get("/api/health").json()["workers"]
    assert shown == [{"worker": "a", "sessions": 1, "capacity": 10, "models": REFUSING}]
    assert "workers" not in client.get("/api/health").json()
