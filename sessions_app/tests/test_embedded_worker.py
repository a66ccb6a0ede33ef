"""The worker in this process (the embedded default): sessions play by the clock and say so."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.db import database_sync_to_async

from models_app.engines.base import Engine, PassResult
from models_app.registry import ModelSpec, registry
from models_app.streaming import Word
from sessions_app.models import State, TranscriptSegment, TranscriptVersion
from sessions_app.tests.conftest import GroupListener, new_session, reload, running_worker, start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


async def test_a_session_plays_in_real_time_and_completes(make_media):
    media = await database_sync_to_async(make_media)(4.0)
    session = await database_sync_to_async(new_session)(media)
    async with GroupListener(session.pk) as listener, running_worker():
        started = time.monotonic()
        await start(session)
        end = await listener.until("session.end")
        took = time.monotonic() - started

    assert end["state"] == "completed"
    assert end["reason"] == "The recording has been played to its end."
    assert 3.8 < took < 10.0  # real time: no faster than the recording
    assert "welcome" in listener.final_text.lower() and "transcription" in listener.final_text.lower()
    statuses = listener.of("session.status")
    assert len(statuses) >= 3  # about once a second
    assert [s["progress_secs"] for s in statuses] == sorted(s["progress_secs"] for s in statuses)
    assert all(s["duration_secs"] == pytest.approx(4.0, abs=0.05) for s in statuses)
    assert any(not e["is_final"] and e["text"] for e in listener.of("session.subtitle"))
    session = await reload(session)
    assert session.state == State.COMPLETED
    assert session.position() == pytest.approx(4.0, abs=0.05)
    rows = await database_sync_to_async(
        lambda: list(TranscriptSegment.objects.filter(session=session, version=TranscriptVersion.LIVE))
    )()
    assert " ".join(r.text for r in rows) == listener.final_text
    assert [r.index for r in rows] == list(range(len(rows)))


async def test_pause_holds_the_clock_and_resume_goes_on(make_media):
    media = await database_sync_to_async(make_media)(4.0)
    session = await database_sync_to_async(new_session)(media)
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        await listener.until("session.clock")  # running
        await asyncio.sleep(1.0)
        await database_sync_to_async((await reload(session)).pause)()
        await asyncio.sleep(2.0)
        during = (await reload(session)).position()
        await database_sync_to_async((await reload(session)).resume)()
        end = await listener.until("session.end")

    assert 0.9 < during < 1.6
    assert end["state"] == "completed"
    paused = [s for s in listener.of("session.status") if s["state"] == "paused"]
    assert paused and all(abs(s["progress_secs"] - paused[0]["progress_secs"]) < 0.2 for s in paused)


async def test_stop_ends_the_session_with_the_reason(make_media):
    media = await database_sync_to_async(make_media)(8.0)
    session = await database_sync_to_async(new_session)(media)
    async with GroupListener(session.pk) as listener, running_worker() as worker:
        await start(session)
        await listener.until("session.clock")
        await asyncio.sleep(1.0)
        await database_sync_to_async((await reload(session)).stop)("Stopped by an operator.")
        end = await listener.until("session.end")
        await asyncio.sleep(1.0)  # the worker notices within a refresh and lets go of it

        assert worker.runs == {}
    assert end == {"type": "session.end", "state": "stopped", "reason": "Stopped by an operator."}


async def test_the_session_timeout_stops_it_and_says_why(make_media, settings):
    settings.SESSION_TIMEOUT_SECS = 1
    media = await database_sync_to_async(make_media)(6.0)
    session = await database_sync_to_async(new_session)(media)
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        end = await listener.until("session.end")

    assert end["state"] == "stopped"
    assert end["reason"] == "Stopped after 1 s, the SESSION_TIMEOUT_SECS limit."


async def test_a_model_that_cannot_load_ends_the_session_in_error_and_others_keep_running(
    make_media, settings, tmp_path
):
    settings.TDT_MODEL_PATH = tmp_path / "missing"
    media = await database_sync_to_async(make_media)(3.0)
    broken = await database_sync_to_async(new_session)(media, model_id="parakeet-tdt")
    fine = await database_sync_to_async(new_session)(media)
    async with GroupListener(broken.pk) as bad, GroupListener(fine.pk) as good, running_worker():
        await start(broken)
        await start(fine)
        error_end = await bad.until("session.end")
        fine_end = await good.until("session.end")

    assert error_end["state"] == "error"
    assert error_end["reason"].startswith("Parakeet TDT is not downloaded")
    assert fine_end["state"] == "completed"


class SlowEngine(Engine):
    """Each pass takes `PASS_SECS`: one stream falls behind real time."""

    PASS_SECS = 3.5

    @classmethod
    def missing_files(cls, location):
        return None

    def transcribe(self, requests):
        time.sleep(self.PASS_SECS)
        return [PassResult([Word(" word", 0.2, 0.5, 0.9)]) for _ in requests]


@pytest.fixture
def slow_model(monkeypatch):
    spec = ModelSpec("slow", "Slow", "", missing=lambda: None, load=SlowEngine, languages=lambda: ["en"])
    monkeypatch.setitem(registry.specs, "slow", spec)
    monkeypatch.delitem(registry._loaded, "slow", raising=False)


async def test_a_model_slower_than_real_time_stretches_passes_and_never_holds_up_the_audio(make_media, slow_model):
    media = await database_sync_to_async(make_media)(8.0)
    session = await database_sync_to_async(new_session)(media, model_id="slow", preset="low_latency")
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        end = await listener.until("session.end", timeout=40)

    statuses = listener.of("session.status")
    assert end["state"] == "completed"
    assert max(s["degraded"] for s in statuses) == 1  # stretched, never skipping
    assert all(s["skipped_secs"] == 0 for s in statuses)  # the intake kept up with the clock
    assert any(e["type"] == "session.subtitle" and e["is_final"] for e in listener.events)
    stretched_at = next(i for i, e in enumerate(listener.events) if e["type"] == "session.status" and e["degraded"])
    later = listener.events[stretched_at + 1 :]
    assert not any(e["type"] == "session.subtitle" and not e["is_final"] and e["text"] for e in later)


async def test_a_run_far_behind_the_clock_skips_audio_and_counts_it(make_media, monkeypatch):
    from media_app.wavfile import GrowingWav
    from sessions_app import runner

    # the thresholds scaled down (10 s behind would make a slow test), and reading made slow
    monkeypatch.setattr(runner, "SKIP_AFTER_SECS", 1.0)
    monkeypatch.setattr(runner, "SKIP_KEEPS_SECS", 0.3)
    read = GrowingWav.read

    def slow_read(self, start, end):
        time.sleep(1.5)
        return read(self, start, end)

    monkeypatch.setattr(GrowingWav, "read", slow_read)
    media = await database_sync_to_async(make_media)(7.0)
    session = await database_sync_to_async(new_session)(media, preset="low_latency")
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        await listener.until("session.end", timeout=40)

    statuses = listener.of("session.status")
    assert max(s["degraded"] for s in statuses) == 2
    assert max(s["skipped_secs"] for s in statuses) > 1.0


async def test_ten_sessions_on_one_model_load_it_once(make_media):
    media = await database_sync_to_async(make_media)(2.0)
    sessions = [await database_sync_to_async(new_session)(media) for _ in range(10)]
    before = registry.loaded("whisper").engine
    listeners = [GroupListener(s.pk) for s in sessions]
    for listener in listeners:
        await listener.__aenter__()
    async with running_worker():
        for session in sessions:
            await start(session)
        ends = [await listener.until("session.end", timeout=40) for listener in listeners]

    assert [e["state"] for e in ends] == ["completed"] * 10
    assert registry.loaded("whisper").engine is before
    assert len([w for w in registry._loaded if w == "whisper"]) == 1


async def test_a_full_worker_leaves_sessions_waiting_until_it_has_room(make_media):
    media = await database_sync_to_async(make_media)(2.0)
    first = await database_sync_to_async(new_session)(media)
    second = await database_sync_to_async(new_session)(media)
    async with GroupListener(first.pk) as a, GroupListener(second.pk) as b, running_worker(capacity=1):
        await start(first)
        await start(second)
        await a.until("session.end")
        await b.until("session.end")

    first, second = await reload(first), await reload(second)
    assert first.state == second.state == State.COMPLETED
    assert second.started_at >= first.ended_at
