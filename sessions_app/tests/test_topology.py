"""The scale-out deployment as its processes, through its proxy: PostgreSQL, Redis, two web
processes behind nginx, two workers, one MEDIA_DIR (transcriber_site/cluster.py, `make cluster`).

Everything goes through nginx, as a browser's requests do; the web processes are asked
directly only which of them holds a listener (their /api/health).
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import websockets

from media_app.audio import read_audio
from transcriber_site import settings as site_settings
from transcriber_site.cluster import Child, Cluster
from transcriber_site.speech_set import clip
from transcriber_site.testing import (
    AudioListener,
    api_call,
    best_match,
    clock_of,
    position,
    upload,
    words_of,
    write_audio,
)

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

# Idle for longer than every timeout between a socket or a worker and Redis: channels_redis
# waits 5 s in BZPOPMIN, redis-py's reads time out after REDIS_SOCKET_TIMEOUT_SECS.
IDLE_SECS = site_settings.REDIS_SOCKET_TIMEOUT_SECS + 5
SESSIONS = 4
RECORDINGS = {  # four different 22 s stretches of the recorded programme (speech_set.py), not one repeated
    "programme-1.flac": (0.0, 22.0),
    "programme-2.flac": (22.0, 44.0),
    "programme-3.flac": (44.5, 66.5),
    "programme-4.flac": (66.5, 88.5),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("topology")
    env = {
        "SECRET_KEY": "test-only",
        "ADMISSION_P95_SECS": "0",  # measured latency on a shared test machine: see conftest.py
        "DIAR_MODEL_PATH": str(root / "no-sortformer"),
        "WORKER_HEARTBEAT_SECS": "0.5",
        "WORKER_HEARTBEAT_TIMEOUT_SECS": "3",
        "MAX_CONCURRENT_SESSIONS": str(SESSIONS),
    }
    with Cluster(root, root / "media", env=env, worker_capacity=2, operator="tests") as running:
        yield running


@pytest.fixture(scope="module")
def library(cluster, tmp_path_factory) -> dict[str, tuple[int, np.ndarray]]:
    """The four recordings, uploaded through the proxy: name -> (media id, its audio at 16 kHz)."""
    directory = tmp_path_factory.mktemp("recordings")
    uploaded = {}
    programme = clip("programme").audio
    for name, (start, end) in RECORDINGS.items():
        audio = programme[int(start * 16000) : int(end * 16000)]
        path = write_audio(directory / name, audio, channels=1)
        uploaded[name] = (upload(cluster.url, cluster.token, path)["id"], read_audio(path))
    return uploaded


async def off_loop(function: Callable[..., Any], *args: Any) -> Any:
    """A blocking call in a thread: the listeners' audio arrives on this loop, which must not stall."""
    return await asyncio.to_thread(function, *args)


def call(cluster: Cluster, path: str, body: dict[str, Any] | None = None, method: str | None = None) -> Any:
    return api_call(cluster.url, path, body, method, headers={"Authorization": f"Bearer {cluster.token}"})


def test_the_session_limit_holds_against_25_concurrent_creates_through_both_web_processes(cluster, library):
    media_id = next(iter(library.values()))[0]

    def create(_: int) -> tuple[int, Any]:
        try:
            return 201, call(cluster, "/api/sessions", {"model_id": "whisper", "media_id": media_id})
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read().decode()

    with ThreadPoolExecutor(25) as pool:
        results = list(pool.map(create, range(25)))
    for status, session in results:
        if status == 201:
            call(cluster, f"/api/sessions/{session['id']}", method="DELETE")

    assert Counter(status for status, _ in results) == {201: SESSIONS, 429: 25 - SESSIONS}
    assert all("its limit (MAX_CONCURRENT_SESSIONS)" in body for status, body in results if status == 429)
    creates = [web for method, path, _, web in cluster.nginx.requests() if (method, path) == ("POST", "/api/sessions")]
    assert len(set(creates)) == 2, Counter(creates)  # both web processes took creates
    assert not [s for s in call(cluster, "/api/sessions") if s["state"] in ("starting", "running", "paused")]


def test_four_sessions_through_the_proxy_outlive_idle_timeouts_a_dead_web_process_and_a_dead_worker(cluster, library):
    web_of = {
        api_call(url, "/api/health")["server"]: (url, web)
        for url, web in zip(cluster.web_urls, cluster.webs, strict=True)
    }

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async with websockets.connect(cluster.url.replace("http", "ws") + "/ws/sessions") as feed:
            assert '"subscribed"' in await asyncio.wait_for(feed.recv(), 10)
            await asyncio.sleep(IDLE_SECS)  # the feed, both workers and the web processes sit idle
            sessions = {
                name: await off_loop(call, cluster, "/api/sessions", {"model_id": "whisper", "media_id": media_id})
                for name, (media_id, _) in library.items()
            }
            pushed = await asyncio.wait_for(feed.recv(), 10)  # an idle socket still hears the news
            assert '"session"' in pushed, pushed
        recordings = {sessions[name]["id"]: audio for name, (_, audio) in library.items()}

        # Two listeners per session, one on each web process.
        listeners: dict[int, dict[str, AudioListener]] = {}
        for session_id in recordings:
            listeners[session_id] = await join_on_each_web_process(cluster, session_id, web_of)
        for session_id, by_web in listeners.items():
            for listener in by_web.values():
                await listener.audio_for(3.0, within=30)
                assert_hears(listener, recordings[session_id], await clock_of(listener))
                while not listener.finals():
                    await listener.next("subtitle", within=30)

        # kill -9 of one web process: its listeners reconnect through the proxy, to the other one.
        victim_server, (victim_url, victim_web) = next(iter(web_of.items()))
        survivor_url = next(url for url, _ in web_of.values() if url != victim_url)
        victim_web.kill()
        for session_id, by_web in listeners.items():
            dropped, kept = by_web.pop(victim_server), next(iter(by_web.values()))
            await asyncio.wait_for(dropped.ws.wait_closed(), 15)
            said = [m["text"] for m in kept.finals()]
            again = AudioListener(cluster.url, session_id)
            await again.__aenter__()
            by_web["again"] = again
            replay = await replayed(again, len(said))
            assert [m["text"] for m in replay] == [m["text"] for m in kept.finals()][: len(replay)]
            await again.start_audio()
            await again.audio_for(2.0, within=30)
            assert_hears(again, recordings[session_id], await clock_of(again))
            await dropped.close()
        assert (await off_loop(api_call, survivor_url, "/api/health"))["listeners"] == 2 * SESSIONS
        states = {sid: (await off_loop(call, cluster, f"/api/sessions/{sid}"))["state"] for sid in recordings}
        assert set(states.values()) == {"running"}, states  # no session was lost with the web process

        # kill -9 of one worker: its sessions end with the sentence; the other worker's complete.
        owners = {sid: (await off_loop(call, cluster, f"/api/sessions/{sid}"))["worker"] for sid in recordings}
        killed = cluster.workers[0]
        victim_worker = worker_id(killed)
        assert sorted(Counter(owners.values()).values()) == [2, 2], owners
        killed.kill()
        ends: dict[int, list[dict[str, Any]]] = {}
        for session_id, by_web in listeners.items():
            for listener in by_web.values():
                ends.setdefault(session_id, []).append(await listener.next("end", within=60))
        seen.update(owners=owners, victim_worker=victim_worker, ends=ends, listeners=listeners, survivor=survivor_url)
        seen["transcripts"] = {sid: await off_loop(transcript, cluster, sid) for sid in recordings}
        for by_web in listeners.values():
            for listener in by_web.values():
                await listener.close()
        return seen

    seen = asyncio.run(scenario())

    for session_id, owner in seen["owners"].items():
        session = call(cluster, f"/api/sessions/{session_id}")
        states = {end["state"] for end in seen["ends"][session_id]}
        said = " ".join(m["text"] for m in next(iter(seen["listeners"][session_id].values())).finals())
        if owner == seen["victim_worker"]:
            assert session["state"] == "error" and states == {"error"}, session
            assert f"The worker running this session ({owner}) stopped responding" in session["error"]
        else:
            assert session["state"] == "completed" and states == {"completed"}, session
            assert len(said.split()) > 20, said
        assert words_of(seen["transcripts"][session_id])[: len(words_of(said))] == words_of(said)  # every final kept
    ws_paths = {(path, web) for method, path, status, web in cluster.nginx.requests() if status == "101"}
    for session_id in seen["owners"]:
        assert len({web for path, web in ws_paths if path == f"/ws/{session_id}"}) == 2  # through both
    assert_leaves_nothing(seen["survivor"])


async def join_on_each_web_process(
    cluster: Cluster, session_id: int, web_of: dict[str, tuple[str, Child]]
) -> dict[str, AudioListener]:
    """Listeners joining through the proxy until one holds on each web process: {server id: listener}.

    nginx sends a new connection to the process holding the fewest; which one a listener
    reached shows in that process's count of listeners.
    """
    joined: dict[str, AudioListener] = {}
    for _ in range(6):
        before = {
            server: (await off_loop(api_call, url, "/api/health"))["listeners"] for server, (url, _) in web_of.items()
        }
        listener = AudioListener(cluster.url, session_id)
        await listener.__aenter__()
        await listener.next("session_info")
        after = {
            server: (await off_loop(api_call, url, "/api/health"))["listeners"] for server, (url, _) in web_of.items()
        }
        (server,) = [server for server in web_of if after[server] > before[server]]
        if server in joined:
            await listener.close()
            continue
        await listener.start_audio()
        joined[server] = listener
        if len(joined) == len(web_of):
            return joined
    raise AssertionError(f"session {session_id}: listeners reached only {list(joined)}")


async def replayed(listener: AudioListener, at_least: int) -> list[dict[str, Any]]:
    """The finals a (re)joining listener is sent first, the session's transcript so far."""
    try:
        info = await listener.next("session_info", within=20)
    except TimeoutError:
        raise AssertionError(f"no session_info: {listener.messages}") from None
    assert info["session"]["state"] == "running", info
    replay: list[dict[str, Any]] = []
    while len(replay) < at_least:
        message = await listener.next("subtitle", within=15)
        assert message["replay"], message
        replay.append(message)
    return replay


def assert_hears(listener: AudioListener, recording: np.ndarray, clock: dict[str, Any]) -> None:
    """The last two seconds heard are this session's recording where its clock stands (not another's).

    By samples, not arrival times: on a loaded machine the test's loop takes frames in bursts.
    """
    heard = np.concatenate([samples for _, _, samples in listener.audio[-120:]])[-2 * 48000 :][::3]  # to 16 kHz
    found, correlation = best_match(heard, recording, position(clock, listener.audio[-1][0]) - 2.0, search=3.0)
    assert correlation > 0.8, (listener.url, found, correlation)


def worker_id(worker: Child) -> str:
    line = next(line for line in worker.log().splitlines() if "taking sessions" in line)
    return line.split("worker ", 1)[1].split(" ", 1)[0]


def transcript(cluster: Cluster, session_id: int) -> str:
    url = f"{cluster.url}/api/sessions/{session_id}/transcript?format=txt&version=live"
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())


def assert_leaves_nothing(web_url: str) -> None:
    """No peer, listener or live session left on the web process that lived."""
    deadline = time.monotonic() + 20
    while True:
        health = api_call(web_url, "/api/health")
        if (health["peers"], health["listeners"], health["live_sessions"]) == (0, 0, 0) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (health["peers"], health["listeners"], health["live_sessions"]) == (0, 0, 0), health
