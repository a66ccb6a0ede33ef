"""Listening over the real WebSocket with a real aiortc peer: audio, subtitles, late joiners."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from media_app.audio import read_audio
from sessions_app.tests.conftest import DEMO
from transcriber_site.testing import (
    AudioListener,
    LiveServer,
    api_call,
    best_match,
    clock_event,
    clock_of,
    position,
    write_audio,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("listening")
    media_dir = root / "media"
    media_dir.mkdir()
    demo = read_audio(DEMO)
    write_audio(media_dir / "demo.flac", demo, channels=1)
    write_audio(media_dir / "short.flac", demo[: int(16000 * 3.3)], channels=1)
    with LiveServer(root, env={"MEDIA_DIR": str(media_dir)}) as live:
        live.media = {m["filename"]: m for m in api_call(live, "/api/media")}
        yield live


def new_session(server: Any, name: str = "demo.flac") -> dict:
    return api_call(server, "/api/sessions", {"model_id": "whisper", "media_id": server.media[name]["id"]})


def test_the_audio_heard_is_the_recording_at_the_sessions_position(server):
    session = new_session(server)
    recording = read_audio(DEMO)

    async def listen():
        async with AudioListener(server.url, session["id"]) as listener:
            await listener.start_audio()
            clock = await clock_of(listener)
            await listener.audio_for(4.0)
            return listener, clock

    listener, clock = asyncio.run(listen())
    # one second of what arrived after the first two seconds, and where the clock stood then
    arrivals = [at for at, _, _ in listener.audio]
    start = arrivals[0] + 2.0
    heard = listener.heard(start, start + 1.0)[::3]  # 48 -> 16 kHz (the content is below 8 kHz)
    expected = position(clock, start)
    found, correlation = best_match(heard, recording, expected)

    assert correlation > 0.8, correlation
    assert abs(found - expected) < 0.3, (found, expected)


def test_a_pause_is_heard_as_silence_and_resume_brings_the_sound_back(server):
    session = new_session(server)

    async def listen():
        async with AudioListener(server.url, session["id"]) as listener:
            await listener.start_audio()
            await clock_of(listener)
            await listener.audio_for(1.5)
            api_call(server, f"/api/sessions/{session['id']}/pause", {})
            paused = await clock_event(listener, "paused")
            await listener.audio_for(1.5 + 2.0)
            api_call(server, f"/api/sessions/{session['id']}/resume", {})
            resumed = await clock_event(listener, "running")
            await listener.audio_for(1.5 + 2.0 + 2.0)
            return listener, paused, resumed

    listener, paused, resumed = asyncio.run(listen())
    rms = lambda x: float(np.sqrt(np.mean(x**2))) if len(x) else 0.0  # noqa: E731
    before = listener.heard(paused["server_time"] - 1.0, paused["server_time"])
    during = listener.heard(paused["server_time"] + 0.3, resumed["server_time"])
    after = listener.heard(resumed["server_time"] + 0.3, resumed["server_time"] + 1.8)

    assert paused["state"] == "paused" and resumed["state"] == "running"
    assert rms(before) > 0.02
    assert rms(during) < 0.002
    assert rms(after) > 0.02


def test_the_audio_track_ends_with_the_session(server):
    session = new_session(server, "short.flac")

    async def listen():
        async with AudioListener(server.url, session["id"]) as listener:
            await listener.start_audio()
            end = await listener.next("end", within=20)
            await asyncio.wait_for(listener.track_ended.wait(), 5)
            return end

    end = asyncio.run(listen())

    assert end["state"] == "completed"


def test_subtitles_carry_the_spoken_words_and_a_late_joiner_gets_the_earlier_finals_first(server):
    session = new_session(server)

    async def listen():
        async with AudioListener(server.url, session["id"]) as first:
            await first.next("session_info")
            while len(first.finals()) < 4:
                await first.next("subtitle", within=20)
            async with AudioListener(server.url, session["id"]) as late:
                info = await late.next()
                history = []
                while len(history) < len(first.finals()):
                    history.append(await late.next())
                await first.next("end", within=30)
                await late.next("end", within=30)
                return first, late, info, history

    first, late, info, history = asyncio.run(listen())

    words = " ".join(m["text"] for m in first.finals()).lower()
    assert "welcome" in words and "transcription" in words and "session" in words
    assert info["type"] == "session_info" and info["session"]["id"] == session["id"]
    assert [m["type"] for m in history] == ["subtitle"] * len(history)
    assert all(m["replay"] for m in history)
    assert not any(m.get("replay") for m in first.finals())
    assert [m["index"] for m in history] == list(range(len(history)))
    assert [m["index"] for m in late.finals()] == [m["index"] for m in first.finals()]  # all, once each, in order
    assert [m["text"] for m in late.finals()] == [m["text"] for m in first.finals()]
    assert [m["cue"] for m in history] == [m["cue"] for m in first.finals()][: len(history)]  # the same cues


def test_client_count_counts_listeners_and_drops_when_one_leaves(server):
    session = new_session(server)

    async def listen():
        async with AudioListener(server.url, session["id"]) as a:
            await a.next("session_info")
            async with AudioListener(server.url, session["id"]) as b:
                await b.next("session_info")
                two = await a.next("status", within=5)
                while two["client_count"] != 2:
                    two = await a.next("status", within=5)
            one = await a.next("status", within=5)
            while one["client_count"] != 1:
                one = await a.next("status", within=5)
            return two, one

    two, one = asyncio.run(listen())

    assert two["client_count"] == 2
    assert one["client_count"] == 1
    deadline = time.monotonic() + 5  # the server handles the last socket's close after the client returns
    while api_call(server, f"/api/sessions/{session['id']}")["client_count"] != 0:
        assert time.monotonic() < deadline, "the last listener was still counted 5 s after it left"
        time.sleep(0.1)
    api_call(server, f"/api/sessions/{session['id']}", method="DELETE")


def test_joins_and_leaves_leave_nothing_behind(server):
    session = new_session(server)
    baseline = api_call(server, "/api/health")

    async def churn():
        for _ in range(25):
            async with AudioListener(server.url, session["id"]) as listener:
                await listener.start_audio()
                await listener.audio_for(0.1)

    asyncio.run(churn())
    api_call(server, f"/api/sessions/{session['id']}", method="DELETE")
    deadline = time.monotonic() + 10
    after = api_call(server, "/api/health")
    while (after["peers"], after["audio_sources"], after["listeners"]) != (0, 0, 0) and time.monotonic() < deadline:
        time.sleep(0.2)
        after = api_call(server, "/api/health")

    assert (after["peers"], after["audio_sources"], after["audio_listeners"], after["listeners"]) == (0, 0, 0, 0)
    assert after["tasks"] <= baseline["tasks"] + 2
