"""After a session completes, the worker makes its final transcript: one offline pass over the
whole recording, in the background, written whole, then announced."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from channels.db import database_sync_to_async
from django.db import IntegrityError
from django.test import Client
from django.utils import timezone

from models_app.batching import BACKGROUND, LIVE
from models_app.registry import registry
from models_app.streaming import Word
from models_app.transcript import CueBuilder
from sessions_app import runner
from sessions_app.models import State, TranscriptionSession, TranscriptSegment, TranscriptVersion
from sessions_app.tests.conftest import GroupListener, new_session, reload, running_worker, start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


async def play_to_the_end(listener: GroupListener, session: TranscriptionSession) -> None:
    """Once it runs, move the session's clock to the recording's end: the worker catches up in one push."""
    await listener.until("session.clock")
    started = timezone.now() - timedelta(seconds=session.duration_secs + 1)
    await database_sync_to_async(TranscriptionSession.objects.filter(pk=session.pk).update)(started_at=started)


def final_rows(session: TranscriptionSession) -> list[TranscriptSegment]:
    return list(TranscriptSegment.objects.filter(session=session, version=TranscriptVersion.FINAL))


@pytest.fixture
def offline_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each offline pass: the session's state and its final rows when the pass began."""
    calls: list[dict[str, Any]] = []
    offline = registry.transcribe_offline

    def watched(model_id: str, audio: np.ndarray, **kwargs: Any) -> list[Word]:
        session = TranscriptionSession.objects.get()
        calls.append({"state": session.state, "final_rows": len(final_rows(session)), **kwargs})
        return offline(model_id, audio, **kwargs)

    monkeypatch.setattr(registry, "transcribe_offline", watched)
    return calls


async def test_a_completed_session_gets_a_final_transcript_of_its_words_after_it_completed(make_media, offline_calls):
    media = await database_sync_to_async(make_media)(4.0)
    session = await database_sync_to_async(new_session)(media)
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        await play_to_the_end(listener, session)
        await listener.until("session.end")
        ready = await listener.until("session.transcript")

    assert ready == {"type": "session.transcript", "version": "final", "ready": True}
    assert [(c["state"], c["final_rows"]) for c in offline_calls] == [(State.COMPLETED, 0)]
    session = await reload(session)
    assert session.state == State.COMPLETED
    rows = await database_sync_to_async(final_rows)(session)
    text = "".join(r.text for r in rows).lower()
    assert "welcome" in text and "transcription server" in text
    assert [r.index for r in rows] == list(range(len(rows)))
    assert [r.cue for r in rows] == sorted(r.cue for r in rows)
    assert all(r.words and r.start_time <= r.end_time for r in rows)
    info = await database_sync_to_async(session.to_dict)()
    assert info["transcripts"] == ["live", "final"]


async def test_the_export_then_gives_the_final_version_by_default(make_media):
    media = await database_sync_to_async(make_media)(3.0)
    session = await database_sync_to_async(new_session)(media)
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        await play_to_the_end(listener, session)
        await listener.until("session.transcript")

    get = database_sync_to_async(Client().get)
    url = f"/api/sessions/{session.pk}/transcript"
    default, final, live = await get(url), await get(f"{url}?version=final"), await get(f"{url}?version=live")
    assert default.status_code == final.status_code == live.status_code == 200
    assert default.content == final.content
    assert "welcome" in default.content.decode().lower()
    assert default["Content-Disposition"].endswith('-final.txt"')
    assert live["Content-Disposition"].endswith('-live.txt"')


async def test_the_offline_pass_runs_at_background_priority(make_media, monkeypatch):
    engine = await asyncio.to_thread(registry.loaded, "whisper")
    priorities = []
    run = engine.runner.run

    def watched(request, priority=LIVE):
        priorities.append(priority)
        return run(request, priority)

    monkeypatch.setattr(engine.runner, "run", watched)
    media = await database_sync_to_async(make_media)(3.0)
    session = await database_sync_to_async(new_session)(media)
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        await play_to_the_end(listener, session)
        await listener.until("session.transcript")

    # the live passes, then (once the session completed) only the offline pass's
    assert LIVE in priorities and BACKGROUND in priorities
    assert priorities == sorted(priorities)


async def test_a_stopped_session_gets_no_final_pass(make_media, offline_calls):
    media = await database_sync_to_async(make_media)(8.0)
    session = await database_sync_to_async(new_session)(media)
    async with GroupListener(session.pk) as listener, running_worker() as worker:
        await start(session)
        await listener.until("session.clock")
        run = worker.runs[session.pk]
        await database_sync_to_async((await reload(session)).stop)("Stopped by an operator.")
        await listener.until("session.end")
        assert run.task is not None
        await run.task

        assert worker.final_passes == {}
    assert offline_calls == []
    assert not any(e["type"] == "session.transcript" for e in listener.events)
    session = await reload(session)
    assert (await database_sync_to_async(session.to_dict)())["transcripts"] == ["live"]


async def test_a_failed_pass_is_logged_and_announced_and_other_sessions_still_get_theirs(
    make_media, monkeypatch, caplog
):
    offline = registry.transcribe_offline

    def fails_on_short_recordings(model_id, audio, **kwargs):
        if len(audio) < 16000 * 2.5:
            raise RuntimeError("the engine fell over")
        return offline(model_id, audio, **kwargs)

    monkeypatch.setattr(registry, "transcribe_offline", fails_on_short_recordings)
    short = await database_sync_to_async(new_session)(await database_sync_to_async(make_media)(2.0, "short.flac"))
    fine = await database_sync_to_async(new_session)(await database_sync_to_async(make_media)(3.0, "fine.flac"))
    with caplog.at_level(logging.ERROR, logger="sessions_app.runner"):
        async with GroupListener(short.pk) as bad, GroupListener(fine.pk) as good, running_worker():
            await start(short)
            await start(fine)
            await play_to_the_end(bad, short)
            await play_to_the_end(good, fine)
            failed = await bad.until("session.transcript")
            ready = await good.until("session.transcript")

    assert failed == {
        "type": "session.transcript",
        "version": "final",
        "ready": False,
        "error": "The offline pass failed: the engine fell over",
    }
    assert ready["ready"] is True
    assert f"session {short.pk}: the final transcript failed" in caplog.text
    assert (await reload(short)).state == (await reload(fine)).state == State.COMPLETED
    assert await database_sync_to_async(final_rows)(short) == []
    assert await database_sync_to_async(final_rows)(fine)


async def test_shutdown_cancels_a_running_pass_and_nothing_is_written(make_media, monkeypatch):
    began, release = threading.Event(), threading.Event()

    def held(model_id, audio, **kwargs):
        began.set()
        release.wait(10)
        raise RuntimeError("released by the test")

    monkeypatch.setattr(registry, "transcribe_offline", held)
    media = await database_sync_to_async(make_media)(2.0)
    session = await database_sync_to_async(new_session)(media)
    try:
        async with GroupListener(session.pk) as listener, running_worker() as worker:
            await start(session)
            await play_to_the_end(listener, session)
            await listener.until("session.end")
            await asyncio.to_thread(began.wait, 10)
            task = worker.final_passes[session.pk]
        # running_worker has shut the worker down
        assert task.cancelled()
        assert worker.final_passes == {}
    finally:
        release.set()
    assert await database_sync_to_async(final_rows)(session) == []


def test_a_final_transcript_is_written_whole_or_not_at_all(make_media):
    session = new_session(make_media(1.0))
    words = [Word(f" word{i}.", i * 0.5, i * 0.5 + 0.4) for i in range(200)]
    pieces = CueBuilder().add(words)
    assert len(pieces) == 200  # several INSERT batches on SQLite
    TranscriptSegment.objects.create(
        session=session, version=TranscriptVersion.FINAL, index=150, text="in the way", start_time=0, end_time=0
    )

    with pytest.raises(IntegrityError):
        runner.save_final_transcript(session.pk, pieces)

    assert [r.text for r in final_rows(session)] == ["in the way"]
