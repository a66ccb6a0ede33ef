"""One session, many listeners: the cost of fanning encoded audio out over WebRTC.

    .venv/bin/python bench/fanout.py [--listeners 1,10,50,100] [--window 5] [--churn 1000]

Starts the real server (`manage.py serve`) with one session on a long recording and
joins aiortc listeners over the real WebSocket, in steps up to each N. Prints, per N:
* the server process's CPU while N listeners are connected (percent of one core, over
  `window` seconds), and per extra listener beyond the first;
* time from `ready` to the first decoded audio at the listener (p50, p95 of the joiners);
* audio lost at the listeners: RTP packets lost (receiver stats) and gaps in the frames'
  timestamps.
Then `churn` joins and leaves (with audio), and the server's peers, audio sources,
tasks and memory before and after (nothing may be left behind).
The listeners run in this process, on the same two cores as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transcriber_site.settings")

from media_app.audio import read_audio
from transcriber_site.testing import AudioListener, LiveServer, api_call, write_audio

DEMO = Path(__file__).resolve().parent.parent / "media" / "demo.wav"
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


async def bench(server: LiveServer, session_id: int, counts: list[int], window: float, churn: int) -> None:
    process = psutil.Process(server.process.pid)  # type: ignore[union-attr]
    listeners: list[AudioListener] = []

    def cpu_over(seconds: float) -> float:
        t0, c0 = time.perf_counter(), sum(process.cpu_times()[:2])
        time.sleep(seconds)
        return (sum(process.cpu_times()[:2]) - c0) / (time.perf_counter() - t0) * 100

    idle = await asyncio.to_thread(cpu_over, window)
    print(f"server CPU with the session running and no listener: {idle:.1f}% of a core")
    print("   N   server CPU   per extra   ready->audio p50    p95    RTP lost  frame gaps  frames")
    first_cpu = None
    for n in counts:
        joined: list[float] = []
        while len(listeners) < n:
            batch = await asyncio.gather(*(join(server.url, session_id) for _ in range(min(10, n - len(listeners)))))
            listeners += [listener for listener, _ in batch]
            joined += [delay for _, delay in batch]
        for listener in listeners:
            listener.audio.clear()
        cpu = await asyncio.to_thread(cpu_over, window)
        first_cpu = cpu if first_cpu is None else first_cpu
        per_extra = (cpu - first_cpu) / (n - counts[0]) if n > counts[0] else float("nan")
        lost, gaps, frames = await losses(listeners)
        print(
            f"{n:4d}   {cpu:7.1f}%    {per_extra:6.2f}%     {np.percentile(joined, 50) * 1000:6.0f} ms"
            f" {np.percentile(joined, 95) * 1000:6.0f} ms   {lost:6d}    {gaps:6d}   {frames:7d}"
        )
    for listener in listeners:
        await listener.close()

    before = await settled(server)
    started = time.perf_counter()
    for _ in range(churn // 10):
        batch = await asyncio.gather(*(join(server.url, session_id) for _ in range(10)))
        for listener, _ in batch:
            await listener.close()
    after = await settled(server)
    print(f"{churn} joins and leaves with audio in {time.perf_counter() - started:.0f} s:")
    for key in ("peers", "audio_sources", "audio_listeners", "listeners", "tasks", "rss_mb"):
        print(f"  {key:16s} before {before[key]:6}   after {after[key]:6}")


async def settled(server: LiveServer, within: float = 15.0) -> dict[str, int]:
    """The server's health once the last leavers' sockets and peers have closed."""
    deadline = time.monotonic() + within
    while True:
        health = api_call(server.url, "/api/health")
        if (health["peers"], health["listeners"]) == (0, 0) or time.monotonic() > deadline:
            return health  # type: ignore[no-any-return]
        await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listeners", default="1,10,50,100")
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--churn", type=int, default=1000)
    args = parser.parse_args()
    counts = [int(n) for n in args.listeners.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        root = Path(tmp)
        media_dir = root / "media"
        media_dir.mkdir()
        write_audio(media_dir / "long.flac", np.tile(read_audio(DEMO), 50), channels=1)  # about 11 minutes
        with LiveServer(root, env={"MEDIA_DIR": str(media_dir), "LOG_LEVEL": "WARNING"}) as server:
            [media] = api_call(server.url, "/api/media")
            session = api_call(server.url, "/api/sessions", {"model_id": "whisper", "media_id": media["id"]})
            asyncio.run(bench(server, session["id"], counts, args.window, args.churn))


if __name__ == "__main__":
    main()
