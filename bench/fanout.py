"""One session, many listeners: the cost of fanning encoded audio out over WebRTC.

    .venv/bin/python bench/fanout.py [--listeners 1,10,50,100] [--window 5] [--churn 1000]

Starts the real server (`manage.py serve`) with one session on a long recording of music
(real sound to encode; no speech, so the session's transcription costs nothing) and
joins aiortc listeners over the real WebSocket, in steps up to each N. Prints, per N:
* the server process's CPU while N listeners are connected (percent of one core, over
  `window` seconds), and per extra listener beyond the first;
* time from `ready` to the first decoded audio at the listener (p50, p95 of the joiners);
* audio lost at the listeners: RTP packets lost (receiver stats) and gaps in the frames'
  timestamps.
Then `churn` joins and leaves (with audio), and the server's peers, audio sources,
tasks and memory before and after (nothing may be left behind).
The listeners run in `processes` other processes, on the same two cores as the server:
their CPU is printed too, since a saturated listener process delays its own handshakes.
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

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transcriber_site.settings")

from transcriber_site.testing import AudioListener, LiveServer, api_call, write_audio

FRAME_PTS = 960  # 20 ms at 48 kHz


async def join(url: str, session_id: int) -> tuple[AudioListener, float]:
    listener = AudioListener(url, session_id)
    await listener.__aenter__()
    await listener.next("session_info")
    await listener.start_audio()
    await listener.audio_for(0.02, within=30)
    assert listener.ready_sent_at is not None
    return listener, listener.audio[0][0] - listener.ready_sent_at


async def losses(listeners: list[AudioListener]) -> tuple[int, int, int]:
    """(RTP packets lost per receiver stats, frames missing from timestamp gaps, frames received)."""
    lost = gaps = frames = 0
    for listener in listeners:
        stats = await listener.pc.getStats()
        lost += sum(getattr(s, "packetsLost", 0) or 0 for s in stats.values() if s.type == "inbound-rtp")
        pts = np.array([p for _, p, _ in listener.audio])
        steps = np.diff(pts) // FRAME_PTS
        gaps += int(np.sum(steps[steps > 1] - 1))
        frames += len(pts)
    return lost, gaps, frames


def listener_process(url: str, session_id: int, conn: Connection) -> None:
    """A process holding its share of the listeners, taking orders over `conn`."""
    asyncio.run(serve_orders(url, session_id, conn))


async def serve_orders(url: str, session_id: int, conn: Connection) -> None:
    listeners: list[AudioListener] = []
    while True:
        order, arg = await asyncio.to_thread(conn.recv)
        if order == "grow":  # join until there are `arg`; answer the joiners' ready->audio delays
            delays: list[float] = []
            while len(listeners) < arg:
                batch = await asyncio.gather(*(join(url, session_id) for _ in range(min(10, arg - len(listeners)))))
                listeners += [listener for listener, _ in batch]
                delays += [delay for _, delay in batch]
            conn.send(delays)
        elif order == "clear":
            for listener in listeners:
                listener.audio.clear()
            conn.send(None)
        elif order == "losses":
            conn.send(await losses(listeners))
        elif order == "churn":  # join and leave `arg` times, ten at a time
            for _ in range(arg // 10):
                batch = await asyncio.gather(*(join(url, session_id) for _ in range(10)))
                for listener, _ in batch:
                    await listener.close()
            conn.send(None)
        elif order == "close":
            for listener in listeners:
                await listener.close()
            listeners = []
            conn.send(None)
            return


class Pool:
    """The listeners, spread over `size` processes (one process would saturate its core first)."""

    def __init__(self, url: str, session_id: int, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes = []
        self.processes = []
        for _ in range(size):
            mine, theirs = context.Pipe()
            process = context.Process(target=listener_process, args=(url, session_id, theirs), daemon=True)
            process.start()
            self.pipes.append(mine)
            self.processes.append(psutil.Process(process.pid))

    def ask(self, orders: list[tuple[str, object]]) -> list[object]:
        for pipe, order in zip(self.pipes, orders, strict=True):
            pipe.send(order)
        return [pipe.recv() for pipe in self.pipes]

    def all(self, order: str, arg: object = None) -> list[object]:
        return self.ask([(order, arg)] * len(self.pipes))

    def grow(self, n: int) -> list[float]:
        shares = [n // len(self.pipes) + (i < n % len(self.pipes)) for i in range(len(self.pipes))]
        return [delay for delays in self.ask([("grow", share) for share in shares]) for delay in delays]  # type: ignore[attr-defined]

    def cpu_seconds(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.processes)


def bench(server: LiveServer, session_id: int, counts: list[int], window: float, churn: int, processes: int) -> None:
    server_process = psutil.Process(server.process.pid)  # type: ignore[union-attr]
    pool = Pool(server.url, session_id, processes)

    def server_seconds() -> float:
        """CPU seconds of the server and its children (the audio process encodes there)."""
        family = [server_process, *server_process.children(recursive=True)]
        return sum(sum(p.cpu_times()[:2]) for p in family)

    def cpu_over(seconds: float) -> tuple[float, float]:
        """(server, listener processes) CPU in percent of one core over `seconds`."""
        t0, s0, l0 = time.perf_counter(), server_seconds(), pool.cpu_seconds()
        time.sleep(seconds)
        wall = time.perf_counter() - t0
        return (server_seconds() - s0) / wall * 100, (pool.cpu_seconds() - l0) / wall * 100

    idle, _ = cpu_over(window)
    print(f"server CPU with the session running and no listener: {idle:.1f}% of a core")
    print(f"listeners in {processes} processes")
    print("   N   server CPU   per extra   ready->audio p50    p95    RTP lost  frame gaps  frames  listeners' CPU")
    first_cpu = None
    for n in counts:
        joined = pool.grow(n)
        pool.all("clear")
        cpu, clients = cpu_over(window)
        first_cpu = cpu if first_cpu is None else first_cpu
        per_extra = (cpu - first_cpu) / (n - counts[0]) if n > counts[0] else float("nan")
        lost, gaps, frames = (sum(values) for values in zip(*pool.all("losses"), strict=True))  # type: ignore[call-overload]
        print(
            f"{n:4d}   {cpu:7.1f}%    {per_extra:6.2f}%     {np.percentile(joined, 50) * 1000:6.0f} ms"
            f" {np.percentile(joined, 95) * 1000:6.0f} ms   {lost:6d}    {gaps:6d}   {frames:7d}    {clients:5.0f}%"
        )
    pool.all("close")

    pool = Pool(server.url, session_id, processes)
    before = asyncio.run(settled(server))
    started = time.perf_counter()
    step = max(churn // 4, processes * 10)
    memory = []
    for done in range(step, churn + 1, step):
        pool.ask([("churn", step // processes)] * processes)
        memory.append(f"{asyncio.run(settled(server))['rss_mb']} MB after {done}")
    after = asyncio.run(settled(server))
    pool.all("close")
    print(f"{churn} joins and leaves with audio in {time.perf_counter() - started:.0f} s:")
    for key in ("peers", "audio_sources", "audio_listeners", "listeners", "tasks", "rss_mb"):
        print(f"  {key:16s} before {before[key]:6}   after {after[key]:6}")
    print(f"  server memory: {before['rss_mb']} MB before, " + ", ".join(memory))


async def settled(server: LiveServer, within: float = 15.0) -> dict[str, int]:
    """The server's health once the last leavers' sockets and peers have closed."""
    deadline = time.monotonic() + within
    while True:
        health = api_call(server, "/api/health")
        if (health["peers"], health["listeners"]) == (0, 0) or time.monotonic() > deadline:
            return health  # type: ignore[no-any-return]
        await asyncio.sleep(0.2)


def music(seconds: float, rate: int = 16000) -> np.ndarray:
    """Chords that change every half second: real sound for the encoder and the ear, and no
    speech, so that the session's transcription (which the VAD skips) does not blur the figures."""
    t = np.arange(int(seconds * rate)) / rate
    chords = [(262, 330, 392), (294, 370, 440), (330, 415, 494), (220, 277, 330)]
    step = (t * 2).astype(int) % len(chords)
    out = np.zeros_like(t)
    for i, chord in enumerate(chords):
        tone = sum(np.sin(2 * np.pi * f * t) for f in chord)
        out += np.where(step == i, tone, 0.0)
    return (0.08 * out * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listeners", default="1,10,50,100")
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--churn", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2, help="processes the listeners are spread over")
    args = parser.parse_args()
    counts = [int(n) for n in args.listeners.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        root = Path(tmp)
        media_dir = root / "media"
        media_dir.mkdir()
        write_audio(media_dir / "long.flac", music(600.0), channels=1)
        # every listener comes from this machine's one address: no per-address limit here
        env = {"MEDIA_DIR": str(media_dir), "LOG_LEVEL": "WARNING", "MAX_SOCKETS_PER_ADDRESS": "0"}
        with LiveServer(root, env=env) as server:
            [media] = api_call(server, "/api/media")
            session = api_call(server, "/api/sessions", {"model_id": "whisper", "media_id": media["id"]})
            bench(server, session["id"], counts, args.window, args.churn, args.processes)


if __name__ == "__main__":
    main()
