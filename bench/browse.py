"""200 open Browse tabs: session changes pushed over /ws/sessions, against polling the list every 3 s.

    .venv/bin/python bench/browse.py [--pages 200] [--window 20] [--listed 200] [--steps idle,push,poll]

Starts the real server (`manage.py serve`, embedded worker) with `listed` ended sessions in
its list, as on a server that has run for a while, and 4 live ones on a recording of music
(no speech: their transcription costs next to nothing). A driver changes them all along, one
change a second: pause one, resume it, stop one and start another, a listener joins or
leaves. Then, in the same run, one step after another, `window` seconds each:
* idle: no Browse page (what the sessions themselves cost);
* push (now): `pages` Browse pages, each a /ws/sessions socket that fetches the list once
  when it is subscribed and then only hears the changes (as static/js/sessions.js does);
* poll (before): `pages` pages fetching GET /api/sessions every 3 s, spread evenly.
It prints per step the server's CPU (its web process and its audio process, in cores busy),
the database queries per second (counted inside the server by a hook on Django's
connections that the bench installs through `sitecustomize`), the list fetches and the
frames the pages got, and the ratios poll / push, with and without the idle part.
The pages run in another process, on the same cores as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transcriber_site.settings")

from bench.fanout import music
from transcriber_site.testing import BASE_DIR, LiveServer, api_call, write_audio

POLL_SECS = 3.0  # what sessions.js did before the feed
PAGE_PING_SECS = 25.0  # sessions.js's FEED_PING_MS
OPEN_TIMEOUT_SECS = 60.0
LIVE_SESSIONS = 4

# Loaded by every Python process the bench starts (PYTHONPATH): counts the SQL statements
# Django runs, on every connection of every thread, and writes the count to a file per process.
QUERY_COUNTER = """
import os
import threading
import time

_directory = os.environ.get("BENCH_QUERY_COUNTS")
if _directory:
    from django.db.backends.signals import connection_created

    _count = [0]
    _lock = threading.Lock()

    def _counted(execute, sql, params, many, context):
        with _lock:
            _count[0] += 1
        return execute(sql, params, many, context)

    def _wrap(sender, connection, **kwargs):
        if _counted not in connection.execute_wrappers:
            connection.execute_wrappers.append(_counted)

    connection_created.connect(_wrap, weak=False)

    def _write():
        path = os.path.join(_directory, str(os.getpid()))
        while True:
            with open(path + ".tmp", "w") as out:
                out.write(str(_count[0]))
            os.replace(path + ".tmp", path)
            time.sleep(0.1)

    threading.Thread(target=_write, daemon=True).start()
"""


class Server:
    """The server's processes, their CPU seconds and their database queries so far."""

    def __init__(self, live: LiveServer, counts: Path) -> None:
        self.live = live
        self.counts = counts

    def processes(self) -> list[psutil.Process]:
        process = psutil.Process(self.live.process.pid)  # type: ignore[union-attr]
        return [process, *process.children(recursive=True)]

    def sample(self) -> tuple[float, dict[int, float], int]:
        """(time, CPU seconds by pid, queries) now."""
        cpu = {p.pid: sum(p.cpu_times()[:2]) for p in self.processes()}
        queries = 0
        for pid in cpu:
            path = self.counts / str(pid)
            if path.exists():
                queries += int(path.read_text() or 0)
        return time.perf_counter(), cpu, queries


def rates(before: tuple[float, dict[int, float], int], after: tuple[float, dict[int, float], int]) -> dict[str, float]:
    wall = after[0] - before[0]
    cpu = sum(seconds - before[1].get(pid, 0.0) for pid, seconds in after[1].items())
    return {"cores": cpu / wall, "qps": (after[2] - before[2]) / wall, "wall": wall}


# --- the pages, in a process of their own ------------------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection, as a browser tab holds one."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> bytes:
        for attempt in range(2):  # once more on a fresh connection if the server closed the idle one
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                assert self.reader is not None
                self.writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: application/json\r\n\r\n".encode()
                )
                head = await self.reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await self.reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"{path}: {head.splitlines()[0].decode()} {body[:200]!r}")
                return body
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class Pages:
    """`pages` Browse tabs, pushed to or polling; what they fetched and heard."""

    def __init__(self, url: str, pages: int) -> None:
        self.url = url
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.pages = pages
        self.fetches = 0
        self.frames = 0
        self.stopping = asyncio.Event()

    async def fetch(self, http: Http) -> None:
        await http.get("/api/sessions")
        self.fetches += 1

    async def pushed_page(self, subscribed: asyncio.Queue[None]) -> None:
        import websockets

        http = Http(self.host, self.port)
        async with websockets.connect(self.url.replace("http://", "ws://") + "/ws/sessions") as ws:
            hello = json.loads(await ws.recv())
            assert hello == {"type": "subscribed", "listed": True}, hello
            await self.fetch(http)  # the one fetch: what changed before the feed opened
            await http.close()  # a tab's idle connection goes after the server's keep-alive
            await subscribed.put(None)
            pinger = asyncio.create_task(self.ping(ws))
            try:
                async for _frame in ws:
                    self.frames += 1
            finally:
                pinger.cancel()

    async def ping(self, ws: object) -> None:
        await asyncio.sleep(random.uniform(0, PAGE_PING_SECS))
        while True:
            await ws.send(json.dumps({"type": "ping", "t": time.time()}))  # type: ignore[attr-defined]
            await asyncio.sleep(PAGE_PING_SECS)

    async def polling_page(self, offset: float) -> None:
        http = Http(self.host, self.port)
        await asyncio.sleep(offset)
        started = time.monotonic()
        n = 0
        while not self.stopping.is_set():
            await self.fetch(http)
            n += 1
            await asyncio.sleep(max(0.0, started + n * POLL_SECS - time.monotonic()))
        await http.close()


async def first_of(awaitable: Any, tasks: list[asyncio.Task[None]]) -> None:
    """Wait for `awaitable`, raising at once what a page's task raised meanwhile."""
    waiting = asyncio.ensure_future(awaitable)
    while not waiting.done():
        done, _ = await asyncio.wait([waiting, *tasks], timeout=OPEN_TIMEOUT_SECS, return_when="FIRST_COMPLETED")
        if not done:
            raise TimeoutError("the pages did not open in time")
        for task in done:
            if task is not waiting and task.exception() is not None:
                waiting.cancel()
                raise task.exception()  # type: ignore[misc]
        tasks = [task for task in tasks if not task.done()]


def pages_process(url: str, mode: str, pages: int, conn: Connection) -> None:
    asyncio.run(run_pages(url, mode, pages, conn))


async def run_pages(url: str, mode: str, pages: int, conn: Connection) -> None:
    """Open the pages, say "ready" once they run (and how long that took), then stop when told."""
    tabs = Pages(url, pages)
    started = time.perf_counter()
    if mode == "push":
        subscribed: asyncio.Queue[None] = asyncio.Queue()
        tasks = []
        for i in range(pages):  # tabs open over a second or so, not all in one instant
            tasks.append(asyncio.create_task(tabs.pushed_page(subscribed)))
            if i % 20 == 19:
                await asyncio.sleep(0.1)
        for _ in range(pages):
            await first_of(subscribed.get(), tasks)
    else:
        tasks = [asyncio.create_task(tabs.polling_page(i * POLL_SECS / pages)) for i in range(pages)]
        await asyncio.sleep(POLL_SECS)  # every page has fetched once
    conn.send(("ready", time.perf_counter() - started, tabs.fetches, tabs.frames))
    await asyncio.to_thread(conn.recv)
    fetches, frames = tabs.fetches, tabs.frames
    tabs.stopping.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    conn.send(("done", fetches, frames))


# --- the driver: sessions change all along -------------------------------------------------------------


class Driver(threading.Thread):
    """One change a second, round and round: pause, resume, stop one and start another, a listener joins or leaves."""

    def __init__(self, live: LiveServer, media_id: int, ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.live, self.media_id, self.ids = live, media_id, ids
        self.stop = threading.Event()
        self.changes = 0
        self.listener = None

    def run(self) -> None:
        from websockets.sync.client import connect

        step = 0
        while not self.stop.wait(1.0):
            slot, kind = (step // 4) % len(self.ids), step % 4
            target = self.ids[slot]
            if kind == 0:
                api_call(self.live, f"/api/sessions/{target}/pause", {})
            elif kind == 1:
                api_call(self.live, f"/api/sessions/{target}/resume", {})
            elif kind == 2:
                api_call(self.live, f"/api/sessions/{target}", method="DELETE")
                new = api_call(self.live, "/api/sessions", {"model_id": "whisper", "media_id": self.media_id})
                self.ids[slot] = new["id"]  # running long before its turn comes again
            elif self.listener is None:
                self.listener = connect(f"{self.live.url.replace('http://', 'ws://')}/ws/{target}")
                self.listener.recv(timeout=10)  # session_info
            else:
                self.listener.close()
                self.listener = None
            self.changes += 1
            step += 1
        if self.listener is not None:
            self.listener.close()


def wait_running(live: LiveServer, session_id: int) -> None:
    deadline = time.monotonic() + 30
    while api_call(live, f"/api/sessions/{session_id}")["state"] != "running":
        if time.monotonic() > deadline:
            raise TimeoutError(f"session {session_id} did not start")
        time.sleep(0.5)


def seed(live: LiveServer, media_id: int, count: int) -> None:
    """`count` ended sessions in the list (bulk, so that no page hears of them)."""
    code = (
        "from sessions_app.models import TranscriptionSession as S\n"
        f"S.objects.bulk_create([S(model_id='whisper', media_id={media_id}, media_filename='long.flac',"
        " duration_secs=600.0, state='stopped', stop_reason='Seeded by bench/browse.py.')"
        f" for _ in range({count})])"
    )
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    subprocess.run([*manage, "shell", "-v0", "-c", code], env=live.env, check=True, cwd=BASE_DIR, capture_output=True)


# --- the steps ------------------------------------------------------------------------------------


def step(server: Server, mode: str, pages: int, window: float, driver: Driver) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    process = None
    opened = {"open_secs": 0.0, "open_fetches": 0.0}
    before_open = server.sample()
    if mode != "idle":
        process = context.Process(target=pages_process, args=(server.live.url, mode, pages, theirs), daemon=True)
        process.start()
        _, open_secs, open_fetches, _ = mine.recv()
        after_open = server.sample()
        opened = {
            "open_secs": open_secs,
            "open_fetches": open_fetches,
            "open_cpu_secs": sum(s - before_open[1].get(pid, 0.0) for pid, s in after_open[1].items()),
            "open_queries": after_open[2] - before_open[2],
        }
    changes = driver.changes
    before = server.sample()
    time.sleep(window)
    after = server.sample()
    measured = {**rates(before, after), **opened, "changes": driver.changes - changes, "fetches": 0, "frames": 0}
    if process is not None:
        mine.send("stop")
        _, fetches, frames = mine.recv()
        measured["fetches"] = fetches - opened["open_fetches"]
        measured["frames"] = frames
        process.join(timeout=30)
    return measured


def bench(live: LiveServer, counts: Path, pages: int, window: float, listed: int, steps: list[str]) -> None:
    server = Server(live, counts)
    [media] = api_call(live, "/api/media")
    seed(live, media["id"], listed)
    ids = [
        api_call(live, "/api/sessions", {"model_id": "whisper", "media_id": media["id"]})["id"]
        for _ in range(LIVE_SESSIONS)
    ]
    for session_id in ids:
        wait_running(live, session_id)
    listed_now = len(api_call(live, "/api/sessions"))
    driver = Driver(live, media["id"], ids)
    driver.start()
    results = {}
    for mode in steps:
        results[mode] = step(server, mode, pages, window, driver)
    driver.stop.set()
    driver.join(timeout=15)

    print(f"{pages} Browse pages, {listed_now} sessions in the list ({LIVE_SESSIONS} live), one change a second;")
    print(f"server: `manage.py serve` (uvicorn, embedded worker); {window:.0f} s per step; pages in another process")
    print(
        f"{'step':28s} {'server CPU':>11s} {'DB queries/s':>13s} {'list fetches/s':>15s}"
        f" {'frames to pages/s':>18s} {'changes':>8s}"
    )
    names = {"idle": "idle (no page)", "push": "push (now)", "poll": f"poll every {POLL_SECS:.0f} s (before)"}
    for mode, m in results.items():
        print(
            f"{names[mode]:28s} {m['cores']:7.3f} cores {m['qps']:13.1f} {m['fetches'] / m['wall']:15.1f}"
            f" {m['frames'] / m['wall']:18.1f} {m['changes']:8d}"
        )
    if "poll" in results:
        served = results["poll"]["fetches"] / results["poll"]["wall"]
        print(f"(polling asks {pages / POLL_SECS:.1f} fetches/s; the server answered {served:.1f}/s)")
    if "push" in results:
        m = results["push"]
        print(
            f"opening the {pages} pushed pages (sockets + one list fetch each): {m['open_secs']:.1f} s,"
            f" {m['open_cpu_secs']:.2f} CPU s, {m['open_queries']:.0f} queries"
        )
    if {"push", "poll"} <= results.keys():
        push, poll = results["push"], results["poll"]
        print(
            f"poll / push, the whole server: CPU {poll['cores'] / push['cores']:.1f}x,"
            f" DB queries {poll['qps'] / max(push['qps'], 0.1):.1f}x"
        )
        if "idle" in results:
            idle = results["idle"]
            cpu = (poll["cores"] - idle["cores"], push["cores"] - idle["cores"])
            qps = (poll["qps"] - idle["qps"], push["qps"] - idle["qps"])
            print(
                f"the pages' own share (step minus idle): CPU {cpu[0]:.3f} against {cpu[1]:.3f} cores"
                f" ({cpu[0] / max(cpu[1], 0.001):.0f}x), DB queries {qps[0]:.1f} against {qps[1]:.1f} per second"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per step")
    parser.add_argument("--listed", type=int, default=200 - LIVE_SESSIONS, help="ended sessions in the list")
    parser.add_argument("--steps", default="idle,push,poll", help="of idle, push, poll (push needs /ws/sessions)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-browse-") as tmp:
        root = Path(tmp)
        media_dir, counts, hook = root / "media", root / "queries", root / "hook"
        for directory in (media_dir, counts, hook):
            directory.mkdir()
        (hook / "sitecustomize.py").write_text(QUERY_COUNTER)
        write_audio(media_dir / "long.flac", music(600.0), channels=1)
        env = {
            "MEDIA_DIR": str(media_dir),
            "LOG_LEVEL": "WARNING",
            "MAX_CONCURRENT_SESSIONS": "10",
            "MAX_SOCKETS_PER_ADDRESS": "0",  # every page comes from this machine's one address
            "BENCH_QUERY_COUNTS": str(counts),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
        }
        with LiveServer(root, env=env) as live:
            bench(live, counts, args.pages, args.window, args.listed, args.steps.split(","))


if __name__ == "__main__":
    main()
