"""Chaos: faults injected into running servers, and what must hold after each.

    .venv/bin/pytest -m chaos        # these alone (make test runs them with everything else)

After every fault: sessions end in a documented state with a sentence, the transcript
so far is kept, media rows and files are intact, and /api/health's counts return to
their baseline. (The full disk and the unmounted media directory: media_app's chaos tests.)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets

from media_app.audio import read_audio
from sessions_app.tests.conftest import DEMO
from transcriber_site.cluster import RedisServer
from transcriber_site.testing import (
    AudioListener,
    LiveServer,
    WorkerProcess,
    api_call,
    api_refusal,
    write_audio,
)

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

# the counts of /api/health that a fault must not leave raised
COUNTS = ("peers", "audio_sources", "audio_listeners", "listeners", "live_sessions")


def library(media_dir: Path, seconds: float = 12.0) -> None:
    media_dir.mkdir(parents=True, exist_ok=True)
    write_audio(media_dir / "talk.flac", read_audio(DEMO)[: int(16000 * seconds)], channels=1)


def fingerprint(server: LiveServer) -> dict[int, tuple[str, str]]:
    """Each media row's stored file and the file's sha256: what a fault must leave intact."""
    out = {}
    for media in api_call(server, "/api/media"):
        stored = next(server.media_dir.glob("talk-*.wav"))
        out[media["id"]] = (media["filename"], hashlib.sha256(stored.read_bytes()).hexdigest())
    return out


def counts(server: LiveServer) -> dict[str, int]:
    health = api_call(server, "/api/health")
    return {name: health[name] for name in COUNTS}


def settled(server: LiveServer, baseline: dict[str, int], within: float = 15.0) -> dict[str, int]:
    deadline = time.monotonic() + within
    while (now := counts(server)) != baseline and time.monotonic() < deadline:
        time.sleep(0.25)
    return now


def start_session(server: LiveServer) -> int:
    [media] = api_call(server, "/api/media")
    return int(api_call(server, "/api/sessions", {"model_id": "whisper", "media_id": media["id"]})["id"])


def wait_state(server: LiveServer, session_id: int, states: tuple[str, ...], within: float = 60.0) -> dict:
    deadline = time.monotonic() + within
    while (session := api_call(server, f"/api/sessions/{session_id}"))["state"] not in states:
        assert time.monotonic() < deadline, session
        time.sleep(0.25)
    return session


def transcript_words(server: LiveServer, session_id: int) -> list[str]:
    with urllib.request.urlopen(f"{server.url}/api/sessions/{session_id}/transcript?format=txt&version=live") as r:
        return r.read().decode().split()


def live_indices(root: Path, session_id: int) -> list[int]:
    """The live transcript rows' indices, from the database itself."""
    with sqlite3.connect(root / "db.sqlite3") as db:
        rows = db.execute(
            'SELECT "index" FROM sessions_app_transcriptsegment WHERE session_id = ? AND version = ? ORDER BY "index"',
            (session_id, "live"),
        )
        return [index for (index,) in rows]


async def listen_until_finals(server: LiveServer, session_id: int, finals: int) -> list[dict]:
    """A listener with audio, until `finals` final subtitles came; the finals it saw."""
    async with AudioListener(server.url, session_id) as listener:
        await listener.next("session_info")
        await listener.start_audio()
        await listener.audio_for(0.5)
        async with asyncio.timeout(30):
            while len(listener.finals()) < finals:
                await listener.next("subtitle")
        return listener.finals()


def test_kill_9_of_the_web_process_mid_session(tmp_path):
    """The embedded server dies with a session playing and a listener listening; a new one starts."""
    library(tmp_path / "media")
    env = {"MEDIA_DIR": str(tmp_path / "media")}
    with LiveServer(tmp_path, env=env) as first:
        files = fingerprint(first)
        sid = start_session(first)
        seen = asyncio.run(listen_until_finals(first, sid, finals=2))
        played = api_call(first, f"/api/sessions/{sid}")["progress_secs"]
        assert first.process is not None
        first.process.kill()
        first.process.wait()
    time.sleep(3)  # downtime, which must not count as played

    with LiveServer(tmp_path, env=env) as second:
        session = api_call(second, f"/api/sessions/{sid}")
        assert session["state"] == "stopped"
        assert session["stop_reason"] == "The server restarted; a session cannot outlive the process that ran it."
        assert played - 2.5 <= session["progress_secs"] <= played + 0.5  # up to its last heartbeat, no downtime
        seen_words = " ".join(f["text"] for f in seen).split()
        assert transcript_words(second, sid)[: len(seen_words)] == seen_words  # what listeners saw is kept
        assert fingerprint(second) == files
        assert counts(second) == dict.fromkeys(COUNTS, 0)
        # and the new process runs sessions again
        again = start_session(second)
        assert wait_state(second, again, ("completed",))["state"] == "completed"


def test_kill_9_of_redis_mid_session_and_back(tmp_path):
    """Scale-out: Redis dies while a worker plays a session. Only events are lost: the session
    plays on and completes with its whole transcript; once Redis is back, sessions run again."""
    library(tmp_path / "media", seconds=9.0)
    with RedisServer(tmp_path) as redis:
        env = {
            "REDIS_URL": redis.url,
            "MEDIA_DIR": str(tmp_path / "media"),
            "WORKER_HEARTBEAT_SECS": "0.5",
            "WORKER_HEARTBEAT_TIMEOUT_SECS": "5",
        }
        with LiveServer(tmp_path, env=env) as web, WorkerProcess(web.env, tmp_path, "w") as worker:
            files = fingerprint(web)
            sid = start_session(web)
            wait_state(web, sid, ("running",))
            time.sleep(2)
            assert redis.process is not None
            redis.process.kill()
            redis.process.wait()
            session = wait_state(web, sid, ("completed", "stopped", "error"), within=30)
            assert session["state"] == "completed", session  # the database, not Redis, carries the session
            words = " ".join(transcript_words(web, sid)).lower()
            assert "welcome" in words and "transcription" in words
            refused = api_refusal(
                web, "/api/sessions", {"model_id": "whisper", "media_id": session["media_id"]}, timeout=60
            )
            assert refused[0] == 503

            with RedisServer(tmp_path, port=redis.port):  # back, on the same address
                time.sleep(1)
                again = start_session(web)
                assert wait_state(web, again, ("completed",), within=40)["state"] == "completed"
                assert fingerprint(web) == files
                assert settled(web, dict.fromkeys(COUNTS, 0)) == dict.fromkeys(COUNTS, 0)
            assert "worker-intake failed" in worker.log()  # it noticed, said so, and came back


def test_a_database_locked_for_40_s_mid_session(tmp_path):
    """Another process holds SQLite's write lock for 40 s, longer than the 30 s busy timeout.
    The session plays on, its finals wait and are saved, it completes; requests meanwhile get a 503."""
    library(tmp_path / "media", seconds=12.0)
    with LiveServer(tmp_path, env={"MEDIA_DIR": str(tmp_path / "media")}) as server:
        files = fingerprint(server)
        sid = start_session(server)
        wait_state(server, sid, ("running",))
        time.sleep(1.5)
        locker = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # the write lock: readers go on (WAL), writers wait
        answers: list[tuple[int, str]] = []
        refused = threading.Thread(
            target=lambda: answers.append(
                # waiting up to a minute: a busy timeout is 30 s
                api_refusal(server, "/api/sessions", {"model_id": "whisper", "media_id": next(iter(files))}, timeout=60)
            )
        )
        refused.start()
        time.sleep(40)
        locker.execute("ROLLBACK")
        locker.close()
        refused.join(30)

        session = wait_state(server, sid, ("completed", "stopped", "error"), within=60)
        assert session["state"] == "completed", session
        indices = live_indices(tmp_path, sid)
        assert indices == list(range(len(indices)))  # no final lost or doubled while the database was locked
        words = " ".join(transcript_words(server, sid)).lower()
        assert "welcome" in words and "transcription" in words
        assert answers == [(503, "The database is busy or unreachable; try again in a moment.")]
        assert fingerprint(server) == files
        assert settled(server, dict.fromkeys(COUNTS, 0)) == dict.fromkeys(COUNTS, 0)
        deadline = time.monotonic() + 40  # the loops that failed on the lock are back
        while not all(loop["alive"] for loop in api_call(server, "/api/health")["supervised"].values()):
            assert time.monotonic() < deadline, api_call(server, "/api/health")["supervised"]
            time.sleep(0.5)
        again = start_session(server)
        assert wait_state(server, again, ("completed",))["state"] == "completed"


HOSTILE = [
    "[" * 5000 + "]" * 5000,
    '{"type": ' * 3000,
    "not json at all",
    "",
    "\x00" * 500,
    '{"type": "' + "x" * 50_000 + '"}',
    '{"type": "join", "session_id": true}',
    '{"type": "join", "session_id": "-1"}',
    '{"type": "join", "session_id": 99999999999999999999999999}',
    '{"type": "ready"}',
    '{"type": "answer", "sdp": "v=0\\r\\nbogus"}',
    '{"type": "answer", "sdp": 12}',
    '{"type": "ice-candidate", "candidate": {"candidate": "candidate:1 1 udp 1 1.2.3.4 9 typ host"}}',
    '{"type": "ice-candidate", "candidate": {"candidate": "garbage"}}',
    '{"type": "ping", "t": {"a": [1, 2, {"b": null}]}}',
    "[1, 2, 3]",
    '{"type": ["a"]}',
]


def test_1000_hostile_websocket_frames(tmp_path):
    library(tmp_path / "media", seconds=30.0)
    with LiveServer(tmp_path, env={"MEDIA_DIR": str(tmp_path / "media")}) as server:
        sid = start_session(server)
        wait_state(server, sid, ("running",))
        baseline = counts(server)

        async def attack() -> tuple[int, int]:
            sent = errors = 0
            base = server.url.replace("http://", "ws://")
            for round_ in range(20):  # 20 sockets, 50 frames each; every other one joined
                async with websockets.connect(base + (f"/ws/{sid}" if round_ % 2 else "/ws"), max_size=None) as ws:
                    for i in range(50):
                        await ws.send(HOSTILE[(round_ * 50 + i) % len(HOSTILE)])
                        sent += 1
                    await ws.send(json.dumps({"type": "ping", "t": "end"}))
                    async with asyncio.timeout(20):
                        while (message := json.loads(await ws.recv())) != {**message, "type": "pong", "t": "end"}:
                            errors += message["type"] == "error"
            return sent, errors

        sent, errors = asyncio.run(attack())
        assert sent == 1000
        assert errors >= 900  # nearly every frame is refused with a sentence (pings and a first ready are not)
        assert settled(server, baseline) == baseline

        seen = asyncio.run(listen_until_finals(server, sid, finals=1))  # and a real listener still gets it all
        assert seen
        assert "Traceback" not in server.log()
