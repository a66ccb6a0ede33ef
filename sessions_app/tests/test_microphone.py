"""An operator's microphone over WebRTC: who may send one, one at a time, into the session's recording.

The first tests run the socket in this process (no worker: the session's clock is started by
hand) and read what reached the recording; the slow ones run the real server, its worker and
Whisper, with an aiortc "operator" that sends the demo recording as a live microphone and an
aiortc listener that hears it and reads its words.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import Client

from media_app.audio import read_audio
from media_app.live import new_live_media
from media_app.wavfile import GrowingWav
from sessions_app import microphone
from sessions_app.models import LIVE_LEAD_SECS, Source, TranscriptionSession
from sessions_app.routing import websocket_urlpatterns
from sessions_app.sources import GAP_SECS
from sessions_app.tests.conftest import DEMO, demo_server, new_session
from transcriber_site.testing import (
    AudioListener,
    GatedMicrophone,
    LiveServer,
    Operator,
    RecordingMicrophone,
    api_call,
    live_operator,
)

RATE = 16000
FRAME = 320  # 20 ms


# --- the socket, in this process ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def operator_socket(session_id: int, cookie: str | None) -> AsyncIterator[Operator]:
    """An Operator on the session's socket, joined (its session_info read), over Channels' test communicator."""
    application = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    headers = [(b"cookie", cookie.encode())] if cookie else []
    communicator = WebsocketCommunicator(application, f"/ws/{session_id}", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    operator = Operator(communicator.send_to, lambda: communicator.receive_from(timeout=60))
    try:
        assert (await operator.next())["type"] == "session_info"
        yield operator
    finally:
        await operator.close()
        await communicator.disconnect()


def microphone_session(**fields: Any) -> TranscriptionSession:
    """A microphone session whose clock runs (as the worker starts it once its model is loaded)."""
    media = new_live_media("Microphone test")
    session = TranscriptionSession.objects.create(
        model_id="whisper",
        source=Source.MICROPHONE,
        media=media,
        media_filename=media.filename,
        duration_secs=3600,
        language="en",
        **fields,
    )
    session.start_clock()
    session.recording_path = media.path  # type: ignore[attr-defined]  # read from the loop, with no query
    return session


def operator_cookie(name: str = "operator") -> str:
    from transcriber_site.operators import make_operator

    client = Client()
    client.force_login(make_operator(name)[0])  # type: ignore[arg-type]
    return f"sessionid={client.cookies['sessionid'].value}"


def recorded(session: TranscriptionSession) -> np.ndarray:
    reader = GrowingWav(session.recording_path)  # type: ignore[attr-defined]
    try:
        return reader.read(0, reader.frames)
    finally:
        reader.close()


async def publisher_of(session: TranscriptionSession) -> str:
    return (await sync_to_async(TranscriptionSession.objects.get)(pk=session.pk)).publisher


async def until(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {within} s"
        await asyncio.sleep(0.05)


def best_offset(heard: np.ndarray, said: np.ndarray) -> tuple[int, float]:
    """(offset in `heard` where `said` best matches, normalised correlation there); by FFT, as both are long."""
    size = 1 << (len(heard) + len(said)).bit_length()
    spectrum = np.fft.rfft(heard, size) * np.conj(np.fft.rfft(said, size))
    scores = np.fft.irfft(spectrum, size)[: len(heard) - len(said) + 1]
    power = np.concatenate([[0.0], np.cumsum(heard.astype(np.float64) ** 2)])
    energy = np.sqrt(np.maximum(power[len(said) :] - power[: -len(said)], 0.0) * np.sum(said.astype(np.float64) ** 2))
    normalised = scores / np.maximum(energy, 1e-9)
    best = int(np.argmax(normalised))
    return best, float(normalised[best])


in_process = pytest.mark.django_db(transaction=True)


@in_process
async def test_the_operators_microphone_is_written_into_the_recording_in_step_with_the_clock():
    session = await sync_to_async(microphone_session)()
    cookie = await sync_to_async(operator_cookie)()
    speech = read_audio(DEMO)[: 3 * RATE]

    async with operator_socket(session.pk, cookie) as operator:
        track = RecordingMicrophone(speech, then="silence")
        answer = await operator.publish(track)
        assert answer["type"] == "publish-answer", answer
        claimed = await publisher_of(session)
        await asyncio.wait_for(track.said.wait(), 10)
        # the last frames cross the network and aiortc's jitter buffer (80 ms)
        await until(lambda: sync_to_async(lambda: len(recorded(session)) >= len(speech))(), 2, "the last audio")
        clock = (await sync_to_async(TranscriptionSession.objects.get)(pk=session.pk)).clock()
        written, first_at = recorded(session), track.first_at
    released = await publisher_of(session)

    assert claimed != "" and released == ""  # the socket's claim, let go when it closed
    offset, correlation = best_offset(written[: len(speech) + RATE], speech[RATE // 2 : 2 * RATE])
    assert correlation > 0.8, correlation  # through Opus: not the same samples, the same sound
    # Position p of the clock is second p of the recording: what is said at clock position p is
    # written LIVE_LEAD_SECS ahead of it (plus the trip), or up to GAP_SECS behind (no silence is padded).
    said_at = max((first_at or 0) - clock["started_at"], 0.0) + LIVE_LEAD_SECS
    written_at = (offset - RATE // 2) / RATE
    assert -GAP_SECS - 0.1 < written_at - said_at < 0.2, (written_at, said_at)


@in_process
async def test_only_an_operator_may_send_a_microphone(settings):
    session = await sync_to_async(microphone_session)()

    async with operator_socket(session.pk, None) as visitor:
        refused = await visitor.publish(RecordingMicrophone(np.zeros(RATE)))

    assert refused == {
        "type": "error",
        "message": "Only an operator may send a microphone to a session; sign in as one.",
        "about": "publish",
        "retry": False,
    }
    assert await publisher_of(session) == ""


@in_process
async def test_a_recording_session_or_an_ended_input_takes_no_microphone(make_media):
    recording = await sync_to_async(new_session)(await sync_to_async(make_media)(1.0), state="running")
    ended = await sync_to_async(microphone_session)()
    await sync_to_async(ended.end_input)(0.0, "Ended by an operator.")
    cookie = await sync_to_async(operator_cookie)()

    async with operator_socket(recording.pk, cookie) as operator:
        on_recording = await operator.publish(RecordingMicrophone(np.zeros(RATE)))
        usable = await operator.send({"type": "ping", "t": 1}) or await operator.next("pong")
    async with operator_socket(ended.pk, cookie) as operator:
        on_ended = await operator.publish(RecordingMicrophone(np.zeros(RATE)))

    assert on_recording["message"] == (
        f"Session {recording.pk} plays a recording; only a microphone session takes a microphone."
    )
    assert usable["type"] == "pong"  # a refusal leaves the socket usable
    assert on_ended["message"] == f"The input of session {ended.pk} has ended; it takes no more audio."


@in_process
async def test_a_second_connection_is_refused_while_the_first_sends_and_takes_over_once_it_has_gone():
    session = await sync_to_async(microphone_session)()
    cookie = await sync_to_async(operator_cookie)()
    other = await sync_to_async(operator_cookie)("second-operator")

    async with operator_socket(session.pk, cookie) as first:
        assert (await first.publish(RecordingMicrophone(np.zeros(RATE), then="silence")))["type"] == "publish-answer"
        async with operator_socket(session.pk, other) as second:
            refused = await second.publish(RecordingMicrophone(np.zeros(RATE)))
    async with operator_socket(session.pk, other) as second:
        taken = await second.publish(RecordingMicrophone(np.zeros(RATE), then="silence"))
        holder = await publisher_of(session)

    assert refused["message"] == microphone.taken_sentence()
    assert refused["retry"] is True
    assert taken["type"] == "publish-answer" and holder != ""


@in_process
async def test_a_page_that_stops_sending_lets_go_so_that_its_reconnect_can_send_again(monkeypatch):
    monkeypatch.setattr(microphone, "PUBLISH_IDLE_SECS", 0.5)
    session = await sync_to_async(microphone_session)()
    cookie = await sync_to_async(operator_cookie)()
    speech = read_audio(DEMO)

    async with operator_socket(session.pk, cookie) as gone, operator_socket(session.pk, cookie) as back:
        # the first page's network drops: its socket stays open on the server, no audio comes any more
        assert (await gone.publish(RecordingMicrophone(speech[: RATE // 2], then="hang")))["type"] == "publish-answer"
        assert (await back.publish(RecordingMicrophone(np.zeros(RATE))))["retry"] is True
        ended = await gone.next("publish-end", within=5)
        await until(lambda: _free(session), 3, "the claim's release")
        back_track = RecordingMicrophone(speech[RATE : 2 * RATE], then="silence")
        assert (await back.publish(back_track))["type"] == "publish-answer"
        await asyncio.wait_for(back_track.said.wait(), 5)
        await until(lambda: sync_to_async(lambda: len(recorded(session)) >= 2 * RATE)(), 3, "the reconnect's audio")
        written = recorded(session)

    assert ended["reason"].startswith("No audio came from the microphone")
    # the time the microphone was away is silence in the recording; then the reconnect's audio
    _, before = best_offset(written[: RATE + RATE // 2], speech[RATE // 8 : RATE // 2])
    _, after = best_offset(written, speech[RATE + RATE // 4 : 2 * RATE - RATE // 4])
    assert before > 0.8 and after > 0.8, (before, after)


async def _free(session: TranscriptionSession) -> bool:
    return await publisher_of(session) == ""


@in_process
async def test_a_socket_that_closes_lets_go_at_once_and_a_new_one_goes_on_in_the_same_recording():
    session = await sync_to_async(microphone_session)()
    cookie = await sync_to_async(operator_cookie)()
    speech = read_audio(DEMO)

    async with operator_socket(session.pk, cookie) as first:
        track = RecordingMicrophone(speech[:RATE], then="end")
        assert (await first.publish(track))["type"] == "publish-answer"
        await asyncio.wait_for(track.said.wait(), 5)
    async with operator_socket(session.pk, cookie) as again:
        track = RecordingMicrophone(speech[RATE : 2 * RATE], then="silence")
        assert (await again.publish(track))["type"] == "publish-answer"
        await asyncio.wait_for(track.said.wait(), 5)
        await until(lambda: sync_to_async(lambda: len(recorded(session)) >= 2 * RATE)(), 3, "the second socket's audio")
        state = (await sync_to_async(TranscriptionSession.objects.get)(pk=session.pk)).state
        written = recorded(session)

    assert state == "running"
    _, first_part = best_offset(written[: 2 * RATE], speech[RATE // 8 : RATE - RATE // 8])
    _, second_part = best_offset(written, speech[RATE + RATE // 8 : 2 * RATE - RATE // 8])
    assert first_part > 0.8 and second_part > 0.8, (first_part, second_part)


@in_process
async def test_ending_the_input_ends_the_microphone_and_lets_go_of_it():
    session = await sync_to_async(microphone_session)()
    cookie = await sync_to_async(operator_cookie)()

    async with operator_socket(session.pk, cookie) as operator:
        track = RecordingMicrophone(read_audio(DEMO)[:RATE], then="silence")
        assert (await operator.publish(track))["type"] == "publish-answer"
        await asyncio.wait_for(track.said.wait(), 5)
        await sync_to_async(session.end_input)(1.0, "Ended by an operator.")
        ended = await operator.next("publish-end", within=5)
        held = await publisher_of(session)

    assert ended == {"type": "publish-end", "reason": None}
    assert held == ""


# --- the real server: its worker transcribes the microphone, a listener hears and reads it ------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with demo_server(tmp_path_factory.mktemp("microphone"), {}) as live:
        yield live


async def running(operator: Operator) -> dict[str, Any]:
    """The clock once the session runs (its model loaded)."""
    info = next(m for m in operator.messages if m["type"] == "session_info")["session"]
    if info["clock"]["state"] == "running":
        return info["clock"]
    while True:
        clock = await operator.next("clock", within=60)
        if clock["state"] == "running":
            return clock


def recording_of(server: LiveServer, media_id: int, within: float = 15.0) -> dict[str, Any]:
    """The session's recording in the library, once the worker has recorded its final length."""
    deadline = time.monotonic() + within
    while True:
        media = next(m for m in api_call(server, "/api/media") if m["id"] == media_id)
        if media["duration_secs"] > 0 or time.monotonic() > deadline:
            return media
        time.sleep(0.2)


def arrivals(listener: AudioListener) -> tuple[np.ndarray, np.ndarray]:
    """What the listener heard (16 kHz) and, for each sample, when its frame arrived (time.time())."""
    audio = np.concatenate([s[::3] for _, _, s in listener.audio])  # 48 -> 16 kHz (speech is below 8 kHz)
    times = np.concatenate([np.full(len(s[::3]), at) for at, _, s in listener.audio])
    return audio, times


def live_recording(server: LiveServer, media_id: int) -> np.ndarray:
    """The samples of a live session's recording, read where the server's database says it is."""
    with contextlib.closing(sqlite3.connect(server.root / "db.sqlite3")) as db:
        (stored,) = db.execute("SELECT stored_path FROM media_app_mediafile WHERE id = ?", (media_id,)).fetchone()
    return read_audio(server.media_dir / stored)


@pytest.mark.slow
def test_a_live_microphone_is_heard_and_read_by_a_listener_and_kept_as_a_recording(server):
    session = api_call(server, "/api/sessions", {"source": "microphone", "model_id": "whisper"})
    speech = read_audio(DEMO)

    async def go_live() -> tuple[Any, ...]:
        async with (
            live_operator(server, session["id"]) as operator,
            AudioListener(server.url, session["id"]) as listener,
        ):
            await listener.start_audio()
            track = GatedMicrophone(speech)
            answer = await operator.publish(track)  # while the model loads: connected by the time it runs
            assert answer["type"] == "publish-answer", answer
            await running(operator)
            track.go.set()
            await asyncio.wait_for(track.said.wait(), len(speech) / RATE + 5)
            while "everyone" not in " ".join(m["text"] for m in listener.finals()).lower():
                await listener.next("subtitle", within=10)
            ended = api_call(server, f"/api/sessions/{session['id']}/end", {})
            end = await listener.next("end", within=15)
            transcript = await listener.next("transcript", within=30)
            return operator, listener, track, ended, end, transcript

    operator, listener, track, ended, end, transcript = asyncio.run(go_live())

    words = " ".join(m["text"] for m in listener.finals()).lower()
    assert "welcome" in words and "transcription" in words, words
    seen = [m["text"] for m in operator.messages if m["type"] == "subtitle" and m["is_final"]]
    assert seen == [m["text"] for m in listener.finals()]  # the operator's page shows the same subtitles
    # the listener hears the microphone: the speech, through two Opus encodings
    heard, heard_at = arrivals(listener)
    offset, correlation = best_offset(heard, speech[RATE : 3 * RATE])
    assert correlation > 0.6, correlation
    audio_delay = heard_at[offset] - (track.spoke_at + 1.0)
    assert 0 < audio_delay < 1.5, audio_delay
    # End: the session played out what it received, completed, and its recording is in the library
    assert ended["live_input"] is False and end["state"] == "completed"
    assert transcript["ready"] is True
    media = recording_of(server, session["media_id"])
    assert len(speech) / RATE < media["duration_secs"] < len(speech) / RATE + 4.0, media
    final = api_call(server, f"/api/sessions/{session['id']}/transcript?format=json&version=final")
    assert "welcome" in " ".join(s["text"] for s in final).lower()
    # from the end of a phrase at the microphone to its final at the listener: position p of the
    # recording was said at spoke_at + (p - where the speech begins in the recording)
    begins, _ = best_offset(live_recording(server, media["id"])[: 6 * RATE], speech[: 2 * RATE])
    delays = [m["received_at"] - (track.spoke_at + m["end"] - begins / RATE) for m in listener.finals()]
    print(
        f"microphone: listener hears it {audio_delay:.2f} s after it was said (correlation {correlation:.2f}); finals "
        f"{', '.join(f'{d:.2f}' for d in delays)} s after the end of their words (median {np.median(delays):.2f} s)"
    )
    assert max(delays) < 6.0, delays


@pytest.mark.slow
def test_a_silent_microphone_gives_no_text(server):
    session = api_call(server, "/api/sessions", {"source": "microphone", "model_id": "whisper"})
    hiss = np.random.default_rng(0).normal(0, 10 ** (-60 / 20), 6 * RATE)  # a microphone's own noise, -60 dBFS

    async def go_live() -> tuple[Any, ...]:
        async with live_operator(server, session["id"]) as operator:
            track = GatedMicrophone(hiss)
            assert (await operator.publish(track))["type"] == "publish-answer"
            await running(operator)
            track.go.set()
            await asyncio.wait_for(track.said.wait(), 10)
            api_call(server, f"/api/sessions/{session['id']}/end", {})
            end = await operator.next("end", within=15)
            return operator, end

    operator, end = asyncio.run(go_live())

    assert end["state"] == "completed"
    subtitles = [m for m in operator.messages if m["type"] == "subtitle" and m["text"].strip()]
    assert subtitles == []
    assert recording_of(server, session["media_id"])["duration_secs"] > 5.5
