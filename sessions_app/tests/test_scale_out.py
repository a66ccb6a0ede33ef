"""Scale-out over a real Redis and PostgreSQL: a web process, two worker processes, and one of them killed."""

from __future__ import annotations

import asyncio
import shutil
import urllib.request
from pathlib import Path

import pytest
from channels_redis.core import RedisChannelLayer

from media_app.audio import read_audio
from sessions_app import events
from transcriber_site.cluster import PostgresServer, RedisServer
from transcriber_site.testing import LiveServer, WorkerProcess, api_call, write_audio

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[2] / "media" / "demo.wav"


@pytest.fixture
def cluster(tmp_path, media_dir):
    """Redis, PostgreSQL, one web process (no embedded worker) and two workers sharing MEDIA_DIR."""
    audio = read_audio(DEMO)
    write_audio(media_dir / "long.flac", audio[: 16000 * 9], channels=1)
    shutil.copy(DEMO, media_dir / "demo.wav")
    with RedisServer(tmp_path) as redis, PostgresServer(tmp_path) as postgres:
        env = {
            "REDIS_URL": redis.url,
            "DATABASE_URL": postgres.create_database("transcriber"),
            "MEDIA_DIR": str(media_dir),
            "WORKER_HEARTBEAT_SECS": "0.5",
            "WORKER_HEARTBEAT_TIMEOUT_SECS": "3",
        }
        with LiveServer(tmp_path, env=env) as web:
            api_call(web, "/api/media")  # the web process scans MEDIA_DIR before it serves
            with (
                WorkerProcess(web.env, tmp_path, "a", capacity=2) as a,
                WorkerProcess(web.env, tmp_path, "b", capacity=2) as b,
            ):
                yield web, redis, a, b


@pytest.mark.chaos
def test_several_workers_share_the_sessions_and_a_dead_worker_fails_only_its_own(cluster):
    web, redis, a, b = cluster
    media = {m["filename"]: m["id"] for m in api_call(web, "/api/media")}
    ids = [
        api_call(web, "/api/sessions", {"model_id": "whisper", "media_id": media["long.flac"]})["id"] for _ in range(4)
    ]

    async def scenario():
        watchers = {sid: SessionWatcher(redis.url, sid) for sid in ids}
        tasks = [asyncio.create_task(w.run()) for w in watchers.values()]
        await asyncio.gather(*(w.playing.wait() for w in watchers.values()))
        owners = {sid: api_call(web, f"/api/sessions/{sid}")["worker"] for sid in ids}
        (a if owners[ids[0]] == worker_id_of(a) else b).kill()  # mid-session: a second of audio played
        await asyncio.gather(*tasks)
        return owners, {sid: w.seen for sid, w in watchers.items()}

    owners, seen = asyncio.run(scenario())
    victim = owners[ids[0]]

    assert len(set(owners.values())) == 2  # both workers took sessions
    for sid in ids:
        final = api_call(web, f"/api/sessions/{sid}")
        end = next(e for e in seen[sid] if e["type"] == "session.end")
        if owners[sid] == victim:
            assert final["state"] == end["state"] == "error"
            assert f"The worker running this session ({victim}) stopped responding" in final["error"]
            # every final announced before the kill is in the transcript
            said = " ".join(e["text"] for e in seen[sid] if e["type"] == "session.subtitle" and e["is_final"]).split()
            with urllib.request.urlopen(f"{web.url}/api/sessions/{sid}/transcript?format=txt&version=live") as r:
                assert r.read().decode().split()[: len(said)] == said
        else:
            assert final["state"] == end["state"] == "completed", final
            text = " ".join(e["text"] for e in seen[sid] if e["type"] == "session.subtitle" and e["is_final"])
            assert "transcription" in text.lower()
    health = api_call(web, "/api/health")
    assert (health["live_sessions"], health["peers"], health["listeners"]) == (0, 0, 0)
    assert {m["filename"] for m in api_call(web, "/api/media")} == set(media)  # the library is intact


class SessionWatcher:
    """Reads one session's group from Redis until it ends; `playing` once a second of it played."""

    def __init__(self, redis_url: str, session_id: int) -> None:
        self.redis_url = redis_url
        self.session_id = session_id
        self.seen: list[dict] = []
        self.playing = asyncio.Event()

    async def run(self) -> None:
        layer = RedisChannelLayer(hosts=[self.redis_url])
        channel = await layer.new_channel()
        await layer.group_add(events.group(self.session_id), channel)
        try:
            async with asyncio.timeout(60):
                while not self.seen or self.seen[-1]["type"] != "session.end":
                    event = await layer.receive(channel)
                    self.seen.append(event)
                    if event["type"] == "session.status" and event["progress_secs"] >= 1.0:
                        self.playing.set()
        finally:
            self.playing.set()
            await layer.close_pools()


def worker_id_of(worker: WorkerProcess) -> str:
    line = next(line for line in worker.log().splitlines() if "taking sessions" in line)
    return line.split("worker ", 1)[1].split(" ", 1)[0]


def test_without_redis_the_worker_command_explains_itself(tmp_path):
    import subprocess
    import sys

    from transcriber_site.testing import BASE_DIR

    result = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "transcription_worker"],
        env={**__import__("os").environ, "REDIS_URL": ""},
        capture_output=True,
        text=True,
        cwd=BASE_DIR,
    )

    assert result.returncode == 1
    assert "REDIS_URL is not set" in result.stderr
