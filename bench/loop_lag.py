"""Event-loop lag in one server process: 10 sessions with 5 listeners each.

    .venv/bin/python bench/loop_lag.py [--sessions 10] [--per-session 5] [--processes 2]

Every listener's WebRTC and WebSocket is carried by the one asyncio loop of the web
process; whatever blocks it delays them all. The server's probe
(`transcriber_site/lib/looplag.py`) sleeps 50 ms again and again and records how late
each wake-up comes; `/api/health` gives p50/p99/max over the last 30 s, and the CPU
the loop's own thread used. The bench starts
the real server (`manage.py serve`, embedded worker) and reads it in three steps:
* no session (the baseline: the loop with nothing to carry);
* N sessions on a 10-minute recording of music (real sound to encode, no speech, so
  the VAD skips inference), no listener (the worker's share);
* the same with M aiortc listeners per session over the real WebSocket.
It prints, per step, the lag, the server's CPU and the listeners' processes' CPU (on the
same two cores: a saturated listener process delays the server too), and audio lost at
the listeners (RTP packets, gaps in the frames' timestamps).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transcriber_site.settings")

from bench.fanout import join, losses, music
from transcriber_site.testing import AudioListener, LiveServer, api_call, write_audio

PROBE_WINDOW = 30.0  # seconds the server's probe keeps (LoopLagProbe's window)


def listener_process(url: str, conn: Connection) -> None:
    asyncio.run(serve_orders(url, conn))


async def serve_orders(url: str, conn: Connection) -> None:
    """Hold this process's share of the listeners, taking orders over `conn`."""
    listeners: list[AudioListener] = []
    while True:
        order, arg = await asyncio.to_thread(conn.recv)
        if order == "join":  # one listener per session id in `arg`, ten at a time
            for i in range(0, len(arg), 10):
                batch = await asyncio.gather(*(join(url, session_id) for session_id in arg[i : i + 10]))
                listeners += [listener for listener, _ in batch]
            conn.send(None)
        elif order == "clear":
            for listener in listeners:
                listener.audio.clear()
            conn.send(None)
        elif order == "losses":
            conn.send(await losses(listeners))
        elif order == "close":
            for listener in listeners:
                await listener.close()
            conn.send(None)
            return


class Pool:
    """The listeners, spread over `size` processes."""

    def __init__(self, url: str, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes = []
        self.processes = []
        for _ in range(size):
            mine, theirs = context.Pipe()
            process = context.Process(target=listener_process, args=(url, theirs), daemon=True)
            process.start()
            self.pipes.append(mine)
            self.processes.append(psutil.Process(process.pid))

    def ask(self, orders: list[tuple[str, object]]) -> list[object]:
        for pipe, order in zip(self.pipes, orders, strict=True):
            pipe.send(order)
        return [pipe.recv() for pipe in self.pipes]

    def all(self, order: str) -> list[object]:
        return self.ask([(order, None)] * len(self.pipes))

    def join(self, session_ids: list[int], per_session: int) -> None:
        """`per_session` listeners on each session, the sessions dealt round the processes."""
        wanted = [sid for _ in range(per_session) for sid in session_ids]
        self.ask([("join", wanted[i :: len(self.pipes)]) for i in range(len(self.pipes))])

    def cpu_seconds(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.processes)


def server_cpu(server: LiveServer) -> dict[int, float]:
    """CPU seconds of the server process and of its children (its audio process), by pid."""
    process = psutil.Process(server.process.pid)  # type: ignore[union-attr]
    return {p.pid: sum(p.cpu_times()[:2]) for p in [process, *process.children(recursive=True)]}


def measure(server: LiveServer, pool: Pool) -> dict[str, float]:
    """The probe's lag over a fresh window, and the CPU of the server and the listeners over it."""
    time.sleep(3.0)  # the joins' handshakes are over
    t0, s0, l0 = time.perf_counter(), server_cpu(server), pool.cpu_seconds()
    time.sleep(PROBE_WINDOW + 0.5)  # the probe's window holds only this step
    wall = time.perf_counter() - t0
    s1 = server_cpu(server)
    lag = api_call(server, "/api/health")["loop_lag"]
    return {
        **lag,
        "server_cpu": sum(cpu - s0.get(pid, 0.0) for pid, cpu in s1.items()) / wall * 100,
        "listeners_cpu": (pool.cpu_seconds() - l0) / wall * 100,
    }


def bench(server: LiveServer, sessions: int, per_session: int, processes: int) -> None:
    pool = Pool(server.url, processes)
    [media] = api_call(server, "/api/media")
    rows: list[tuple[str, dict[str, float], tuple[int, int, int] | None]] = [
        ("no session", measure(server, pool), None)
    ]
    ids = [
        api_call(server, "/api/sessions", {"model_id": "whisper", "media_id": media["id"]})["id"]
        for _ in range(sessions)
    ]
    rows.append((f"{sessions} sessions, no listener", measure(server, pool), None))
    pool.join(ids, per_session)
    pool.all("clear")
    with_listeners = measure(server, pool)
    lost = [sum(values) for values in zip(*pool.all("losses"), strict=True)]  # (RTP lost, frame gaps, frames)
    rows.append((f"{sessions} sessions x {per_session} listeners", with_listeners, (lost[0], lost[1], lost[2])))
    pool.all("close")
    for sid in ids:
        api_call(server, f"/api/sessions/{sid}", method="DELETE")

    print(f"event-loop lag of one server process (probe: 50 ms sleeps, {PROBE_WINDOW:.0f} s per step)")
    print(f"listeners in {processes} processes, on the same cores as the server")
    print(f"{'':30s} lag p50    p99     max  wake-ups  loop thread  server   listeners'  RTP lost  frame gaps  frames")
    for name, m, audio in rows:
        tail = "       -           -        -" if audio is None else f"{audio[0]:8d}  {audio[1]:10d}  {audio[2]:6d}"
        print(
            f"{name:30s} {m['p50_ms']:5.2f} {m['p99_ms']:6.2f} {m['max_ms']:7.2f} ms {m['samples']:5d}"
            f"  {m['loop_cpu_pct']:9.1f}%  {m['server_cpu']:6.1f}%  {m['listeners_cpu']:9.1f}%  {tail}"
        )
    print("(CPU in percent of one core; the server's includes its audio process, and the loop thread's share)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--per-session", type=int, default=5)
    parser.add_argument("--processes", type=int, default=2, help="processes the listeners are spread over")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-loop-lag-") as tmp:
        root = Path(tmp)
        media_dir = root / "media"
        media_dir.mkdir()
        write_audio(media_dir / "long.flac", music(600.0), channels=1)
        env = {
            "MEDIA_DIR": str(media_dir),
            "LOG_LEVEL": "WARNING",
            "MAX_CONCURRENT_SESSIONS": str(args.sessions),
            "MAX_SOCKETS_PER_ADDRESS": "0",  # every listener comes from this machine's one address
        }
        with LiveServer(root, env=env) as server:
            bench(server, args.sessions, args.per_session, args.processes)


if __name__ == "__main__":
    main()
