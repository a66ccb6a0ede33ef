"""Stream sessions: a network stream, opened by the worker, captioned live for listeners.

The stream is a local HTTP server that sends an mp3 of recorded speech in a loop, paced in
real time, as an Icecast mount does. The session writes what it receives into a library
recording; listeners hear that audio over WebRTC and read its subtitles; End plays it out,
completes it and gives it the final (offline) transcript; a stalled stream ends in error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest

from media_app.audio import read_audio
from transcriber_site import speech_set
from transcriber_site.testing import AudioListener, LiveServer, Radio, api_call, api_refusal, mp3_of

ENV = {"STREAM_ALLOW_PRIVATE": "true", "LIVE_STALL_SECS": "3", "LIVE_PROBE_SECS": "5"}


@pytest.fixture(scope="module")
def speech() -> speech_set.Clip:
    return speech_set.clip("beckett")  # recorded: "Ever tried. Ever failed. No matter. ..."


@pytest.fixture(scope="module")
def radio(speech) -> Iterator[Radio]:
    with Radio(mp3_of(np.asarray(speech.audio))) as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("streams"), env=ENV) as live:
        yield live


def start(server: LiveServer, url: str) -> dict:
    return api_call(server, "/api/sessions", {"model_id": "whisper", "source": "stream", "url": url})


def wait_for(server: LiveServer, sid: int, states: tuple[str, ...], within: float = 60.0) -> dict:
    deadline = time.monotonic() + within
    while (session := api_call(server, f"/api/sessions/{sid}"))["state"] not in states:
        assert time.monotonic() < deadline, session
        time.sleep(0.3)
    return session


async def until_said(listener: AudioListener, word: str, within: float = 40.0) -> None:
    """Wait until a final the listener got has `word` in it."""
    deadline = time.monotonic() + within
    while not any(word in f["text"].lower() for f in listener.finals()):
        assert time.monotonic() < deadline, listener.finals()
        await asyncio.sleep(0.5)


def best_correlation(heard: np.ndarray, recording: np.ndarray) -> float:
    """The best normalised correlation of `heard` (16 kHz) anywhere in `recording`."""
    scores = np.correlate(recording, heard, mode="valid")
    energy = np.sqrt(np.convolve(recording**2, np.ones(len(heard)), mode="valid") * np.sum(heard**2))
    return float(np.max(scores / np.maximum(energy, 1e-9)))


@pytest.mark.slow
def test_a_stream_is_captioned_for_listeners_recorded_and_ended(server, radio, speech):
    session = start(server, radio.url("/live.mp3"))
    sid = session["id"]
    assert session["source"] == "stream" and session["live_input"] is True
    assert session["source_url"] == radio.url("/live.mp3")  # shown to operators

    async def listen() -> tuple[np.ndarray, list[dict]]:
        async with AudioListener(server.url, sid) as listener:
            await listener.start_audio()
            await until_said(listener, "failed")
            await listener.audio_for(3.0)
            heard = listener.heard(time.time() - 2.0, time.time())
            return heard[: len(heard) // 3 * 3].reshape(-1, 3).mean(axis=1), listener.finals()  # at 16 kHz

    heard, finals = asyncio.run(listen())
    ended = api_call(server, f"/api/sessions/{sid}/end", {})
    assert ended["live_input"] is False
    assert api_refusal(server, f"/api/sessions/{sid}/end", {}) == (
        409,
        f"The input of session {sid} has already ended.",
    )
    completed = wait_for(server, sid, ("completed", "stopped", "error"))

    assert completed["state"] == "completed", completed
    assert "tried" in " ".join(f["text"].lower() for f in finals)
    [recording] = [m for m in api_call(server, "/api/media") if m["id"] == completed["media_id"]]
    assert recording["format"] == "live" and recording["duration_secs"] >= 5.0
    assert completed["duration_secs"] == pytest.approx(recording["duration_secs"], abs=0.05)
    stored = read_audio(server.media_dir / next(p.name for p in server.media_dir.glob("Stream-*.wav")))
    assert float(np.sqrt(np.mean(heard**2))) > 0.01  # the listener heard sound ...
    assert best_correlation(heard[:8000], stored) > 0.6  # ... and it is the stream's
    deadline = time.monotonic() + 90
    while "final" not in api_call(server, f"/api/sessions/{sid}")["transcripts"]:
        assert time.monotonic() < deadline, "no final transcript"
        time.sleep(1.0)
    final = api_call(server, f"/api/sessions/{sid}/transcript?format=json&version=final")
    assert "tried" in " ".join(segment["text"].lower() for segment in final)


@pytest.mark.slow
def test_a_stream_that_stalls_ends_in_error(server, radio):
    sid = start(server, radio.url("/stall.mp3"))["id"]

    ended = wait_for(server, sid, ("completed", "stopped", "error"), within=30)

    assert ended["state"] == "error"
    assert ended["error"] == "The stream stalled: no audio for 3 s.", ended


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "sentence"),
    [
        ("/missing.mp3", "The stream did not open: "),
        ("/page", "The stream "),
    ],
)
def test_a_url_that_gives_no_audio_is_a_400_and_leaves_nothing(server, radio, path, sentence):
    before = sorted(p.name for p in server.media_dir.iterdir())

    status, error = api_refusal(
        server, "/api/sessions", {"model_id": "whisper", "source": "stream", "url": radio.url(path)}
    )

    assert status == 400 and error.startswith(sentence), error
    assert sorted(p.name for p in server.media_dir.iterdir()) == before


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://radio.example/live.mp3", "A stream URL starts with http://"),
        ("file:///etc/passwd", "A stream URL starts with http://"),
        ("http:///live.mp3", "The stream URL has no host."),
        ("http://radio.example:99999/", "port is not a number"),
        ("http://127.0.0.1:8000/api/media", "loopback, private or link-local address (127.0.0.1)"),
        ("http://localhost/", "loopback, private or link-local address"),
        ("http://10.1.2.3/live.mp3", "(10.1.2.3)"),
        ("http://192.168.0.10/live.mp3", "(192.168.0.10)"),
        ("http://169.254.169.254/latest/meta-data/", "(169.254.169.254)"),  # a cloud's metadata service
        ("rtsp://[::1]:554/cam", "(::1)"),
        ("http://[fe80::1]/", "(fe80::1)"),
        ("srt://0.0.0.0:9000", "(0.0.0.0)"),
    ],
)
def test_stream_urls_that_reach_the_servers_own_network_are_refused(url, says):
    from sessions_app.sources import StreamError, check_stream_url

    with pytest.raises(StreamError) as refused:
        check_stream_url(url)

    assert says in str(refused.value)


@pytest.mark.django_db
def test_a_refused_stream_url_is_a_400_and_makes_no_recording(operator_client, media_dir):
    import json

    response = operator_client.post(
        "/api/sessions",
        json.dumps({"model_id": "whisper", "source": "stream", "url": "http://169.254.169.254/"}),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert "STREAM_ALLOW_PRIVATE" in response.json()["error"]
    assert list(media_dir.iterdir()) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"source": "stream"}, "Field 'url': a stream session needs the stream's URL."),
        ({"source": "stream", "url": "http://x.example/", "media_id": 1}, "Field 'media_id': a stream session"),
        ({"source": "microphone", "url": "http://x.example/"}, "Field 'url': only a stream session has a URL."),
        ({"source": "recording"}, "Field 'media_id': a recording session needs the id of a recording."),
        ({"source": "radio"}, "Field 'source': Input should be 'recording', 'microphone' or 'stream'."),
    ],
)
def test_each_source_takes_its_own_fields(operator_client, media_dir, body, says):
    import json

    response = operator_client.post(
        "/api/sessions", json.dumps({"model_id": "whisper", **body}), content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith(says)
    assert list(media_dir.iterdir()) == []


@pytest.mark.slow
def test_a_paused_stream_keeps_no_audio_of_the_pause(server, radio):
    sid = start(server, radio.url("/live.mp3"))["id"]
    wait_for(server, sid, ("running",))
    running_at = time.monotonic()
    time.sleep(2.0)
    api_call(server, f"/api/sessions/{sid}/pause", {})
    time.sleep(5.0)
    api_call(server, f"/api/sessions/{sid}/resume", {})
    time.sleep(2.0)
    api_call(server, f"/api/sessions/{sid}/end", {})
    wall = time.monotonic() - running_at

    ended = wait_for(server, sid, ("completed", "stopped", "error"))

    assert ended["state"] == "completed", ended
    # what was received while it ran (the stream sends its first second at once): about wall - 5 + 1 s;
    # keeping the pause's audio would make it wall + 1 s
    assert ended["duration_secs"] < wall - 2.5, (ended["duration_secs"], wall)
    assert ended["duration_secs"] > 3.0, ended


@pytest.mark.slow
def test_scale_out_a_worker_reads_the_stream_and_the_web_process_relays_it(tmp_path, radio):
    """Redis, a web process without a worker, and a worker process: the worker opens the stream and
    writes the recording into the shared MEDIA_DIR; the web process relays that file to its listener."""
    from transcriber_site.cluster import RedisServer
    from transcriber_site.testing import WorkerProcess

    with (
        RedisServer(tmp_path) as redis,
        LiveServer(tmp_path, env={**ENV, "REDIS_URL": redis.url}) as web,
        WorkerProcess(web.env, tmp_path, "streams") as worker,
    ):
        sid = start(web, radio.url("/live.mp3"))["id"]

        async def listen() -> tuple[float, str]:
            async with AudioListener(web.url, sid) as listener:
                await listener.start_audio()
                await until_said(listener, "tried")
                await listener.audio_for(2.0)
                heard = listener.heard(time.time() - 1.5, time.time())
                return float(np.sqrt(np.mean(heard**2))), " ".join(f["text"] for f in listener.finals())

        loudness, said = asyncio.run(listen())
        api_call(web, f"/api/sessions/{sid}/end", {})
        ended = wait_for(web, sid, ("completed", "stopped", "error"))
        worker_log = worker.log()

    assert ended["state"] == "completed", ended
    assert f"worker {ended['worker']}: taking sessions" in worker_log  # the worker process ran it
    assert loudness > 0.01 and "tried" in said.lower()
