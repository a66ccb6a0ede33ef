"""Every session ends right: whatever its length, and whatever the database or the channel layer does meanwhile."""

from __future__ import annotations

import asyncio
import time

import pytest
import soundfile
from channels.db import database_sync_to_async
from django.db import OperationalError

from media_app.audio import read_audio
from media_app.models import MediaFile
from sessions_app import runner as runner_module
from sessions_app.models import State, TranscriptSegment, TranscriptVersion
from sessions_app.tests.conftest import DEMO, GroupListener, new_session, reload, running_worker, start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def media_of_exactly(samples: int, tmp_path) -> MediaFile:
    audio = read_audio(DEMO)[:samples]
    assert len(audio) == samples
    path = tmp_path / f"exact-{samples}.wav"
    soundfile.write(path, audio, 16000, subtype="PCM_16")
    return MediaFile.import_file(path, path.name)


@pytest.mark.parametrize("samples", [64002, 64017])
async def test_a_recording_of_any_length_completes(tmp_path, samples):
    # int(n / 16000 * 16000) == n - 1 for these: a truncated clock never reaches the last sample
    assert int(samples / 16000 * 16000) == samples - 1
    media = await database_sync_to_async(media_of_exactly)(samples, tmp_path)
    assert soundfile.info(str(media.path)).frames == samples
    session = await database_sync_to_async(new_session)(media)
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        end = await listener.until("session.end", timeout=20)

    assert end["state"] == "completed"
    session = await reload(session)
    assert session.state == State.COMPLETED


async def test_finals_wait_for_a_locked_database_and_none_is_lost(make_media, monkeypatch):
    """The database refuses writes for 6 s in the middle of the session: transcription goes on,
    the finals are saved and announced once it answers, in order, and the session completes."""
    media = await database_sync_to_async(make_media)(8.0)
    session = await database_sync_to_async(new_session)(media)
    real_bulk_create = TranscriptSegment.objects.bulk_create
    locked = {"until": float("inf"), "refused": 0}

    def bulk_create(rows, *args, **kwargs):
        if time.monotonic() < locked["until"] and locked["until"] != float("inf"):
            locked["refused"] += 1
            raise OperationalError("database is locked")
        return real_bulk_create(rows, *args, **kwargs)

    monkeypatch.setattr(TranscriptSegment.objects, "bulk_create", bulk_create)
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        await listener.until("session.clock")
        await asyncio.sleep(1.0)
        locked["until"] = time.monotonic() + 6.0
        end = await listener.until("session.end", timeout=40)

    assert locked["refused"] > 0  # the lock did refuse writes
    assert end["state"] == "completed"
    session = await reload(session)
    rows = await database_sync_to_async(
        lambda: list(TranscriptSegment.objects.filter(session=session, version=TranscriptVersion.LIVE))
    )()
    assert [r.index for r in rows] == list(range(len(rows)))
    finals = [e for e in listener.of("session.subtitle") if e["is_final"]]
    assert [e["index"] for e in finals] == [r.index for r in rows]  # every saved final announced, in order
    assert "welcome" in " ".join(r.text for r in rows).lower()


async def test_a_session_whose_task_died_stops_beating_and_is_swept(make_media, settings):
    """A worker only beats for the sessions it still runs, so a run that died cannot stay `running`."""
    settings.WORKER_HEARTBEAT_SECS = 0.2
    settings.WORKER_HEARTBEAT_TIMEOUT_SECS = 1.0
    media = await database_sync_to_async(make_media)(30.0)
    session = await database_sync_to_async(new_session)(media)
    async with GroupListener(session.pk) as listener, running_worker() as worker:
        await start(session)
        await listener.until("session.clock")
        run = worker.runs[session.pk]
        assert run.task is not None
        run.task.cancel()  # the task is gone without a word, as if it had crashed
        end = await listener.until("session.end", timeout=10)

    assert end["state"] == "error"
    assert "stopped responding" in end["reason"]


async def test_the_intake_survives_a_database_error_and_the_session_still_runs(make_media, monkeypatch):
    media = await database_sync_to_async(make_media)(2.0)
    session = await database_sync_to_async(new_session)(media)
    real_start = runner_module.SessionWorker.start
    failures = []

    async def flaky_start(self, session_id):
        if not failures:
            failures.append(session_id)
            raise OperationalError("database is locked")
        await real_start(self, session_id)

    monkeypatch.setattr(runner_module.SessionWorker, "start", flaky_start)
    monkeypatch.setattr("transcriber_site.lib.supervise.FIRST_BACKOFF_SECS", 0.1)
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        end = await listener.until("session.end", timeout=20)

    from transcriber_site.lib.supervise import statuses

    assert failures == [session.pk]
    assert end["state"] == "completed"
    assert statuses() == {}  # both loops were stopped with the worker
