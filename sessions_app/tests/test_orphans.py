"""Sessions whose worker is gone: swept into error while running, stopped at start-up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from sessions_app.lifecycle import SessionsRuntime
from sessions_app.models import State, TranscriptionSession
from sessions_app.tests.conftest import new_session

pytestmark = pytest.mark.django_db(transaction=True)


def running(media, worker: str, heartbeat_age: float) -> TranscriptionSession:
    session = new_session(media)
    session.claim(worker)
    session.start_clock()
    TranscriptionSession.objects.filter(pk=session.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age)
    )
    return session


def test_a_session_whose_worker_stopped_beating_turns_to_error(make_media, settings):
    settings.WORKER_HEARTBEAT_TIMEOUT_SECS = 10
    media = make_media(2.0)
    dead = running(media, "host:1:dead", heartbeat_age=30)
    alive = running(media, "host:2:alive", heartbeat_age=1)

    assert TranscriptionSession.sweep_orphans() == [dead.pk]

    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.state == State.ERROR
    assert dead.error.startswith(
        "The worker running this session (host:1:dead) stopped responding; its last heartbeat was at"
    )
    assert alive.state == State.RUNNING


def test_a_session_no_worker_takes_ends_in_error_saying_so(make_media, settings):
    settings.SESSION_START_TIMEOUT_SECS = 5
    media = make_media(2.0)
    waiting = new_session(media, created_at=timezone.now() - timedelta(seconds=6))
    recent = new_session(media)

    assert TranscriptionSession.sweep_orphans() == [waiting.pk]

    waiting.refresh_from_db()
    assert waiting.error == (
        "No worker took the session within 5 s: is `python manage.py transcription_worker` running (REDIS_URL is set)?"
    )
    recent.refresh_from_db()
    assert recent.state == State.STARTING


async def test_the_embedded_server_stops_every_session_left_live_at_start(make_media, settings):
    settings.REDIS_URL = ""
    media = await database_sync_to_async(make_media)(2.0)
    left = [
        await database_sync_to_async(running)(media, "previous:1:x", heartbeat_age=0.5),
        await database_sync_to_async(new_session)(media),
    ]
    runtime = SessionsRuntime()

    await runtime.start()
    await runtime.stop()

    for session in left:
        await database_sync_to_async(session.refresh_from_db)()
        assert session.state == State.STOPPED
        assert session.stop_reason == "The server restarted; a session cannot outlive the process that ran it."


async def test_with_separate_workers_only_sessions_of_dead_workers_are_stopped_at_start(make_media, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # scale-out: other workers may be alive
    media = await database_sync_to_async(make_media)(2.0)
    dead = await database_sync_to_async(running)(media, "gone:1:x", heartbeat_age=60)
    alive = await database_sync_to_async(running)(media, "alive:2:y", heartbeat_age=0.5)
    runtime = SessionsRuntime()

    await runtime.start()
    await runtime.stop()

    await database_sync_to_async(dead.refresh_from_db)()
    await database_sync_to_async(alive.refresh_from_db)()
    assert dead.state == State.STOPPED
    assert alive.state == State.RUNNING


def test_a_session_stopped_after_a_restart_ends_where_its_worker_last_beat(make_media, settings):
    """The downtime between the crash and the restart was never played: it is not progress."""
    media = make_media(60.0)
    session = running(media, "previous:1:x", heartbeat_age=0)
    played_then = timezone.now() - timedelta(seconds=30)  # 10 s played, then the process died 30 s ago
    TranscriptionSession.objects.filter(pk=session.pk).update(
        started_at=played_then - timedelta(seconds=10), heartbeat_at=played_then
    )

    TranscriptionSession.stop_left_running("The server restarted.", only_stale=False)

    session.refresh_from_db()
    assert session.state == State.STOPPED
    assert session.to_dict()["progress_secs"] == pytest.approx(10.0, abs=0.2)


def test_a_swept_session_ends_where_its_worker_last_beat(make_media, settings):
    settings.WORKER_HEARTBEAT_TIMEOUT_SECS = 10
    media = make_media(60.0)
    session = running(media, "host:1:dead", heartbeat_age=0)
    beat = timezone.now() - timedelta(seconds=20)
    TranscriptionSession.objects.filter(pk=session.pk).update(started_at=beat - timedelta(seconds=5), heartbeat_at=beat)

    assert TranscriptionSession.sweep_orphans() == [session.pk]

    session.refresh_from_db()
    assert session.position() == pytest.approx(5.0, abs=0.2)


def test_state_changes_are_announced_only_once_committed(make_media, monkeypatch):
    from django.db import transaction

    from sessions_app import events

    sent: list[str] = []
    monkeypatch.setattr(events, "publish", lambda session_id, event: sent.append(event["type"]))
    session = running(make_media(2.0), "host:1:x", heartbeat_age=0)
    sent.clear()

    with transaction.atomic():
        session.pause()
        session.refresh_from_db()
        assert session.state == State.PAUSED
        assert sent == []  # a listener told now could read the row before the change is committed
    assert sent == ["session.clock"]

    try:
        with transaction.atomic():
            session.stop("never")
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert sent == ["session.clock"]  # a change rolled back is never announced
