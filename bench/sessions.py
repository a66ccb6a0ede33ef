"""N concurrent sessions on the bundled Whisper in one worker process.

    .venv/bin/python bench/sessions.py [--sessions 1,5,10,20] [--seconds 25]

For each N, N sessions play the same 25 s of recorded read prose (the evaluation set's
`two_cities`, `transcriber_site/speech_set.py`) at once through
one `SessionWorker` in this process (as the embedded server runs them), and the bench
listens to every session's group as a client would. Prints:
* lag of final subtitles behind the audio clock: the session's position when a final
  arrived minus the end of its last word (p50, p95, max);
* the worker process's CPU (cores busy on average) and peak resident memory;
* the degradation level the runs reached, and how much audio they skipped;
* the largest N whose p95 lag stays under 2.5 s.
The model is loaded once for all N; the figures exclude its load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

WORKDIR = Path(tempfile.mkdtemp(prefix="bench-sessions-"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "transcriber_site.settings",
        "DATABASE_URL": f"sqlite:///{WORKDIR / 'bench.sqlite3'}",
        "MEDIA_DIR": str(WORKDIR / "media"),
        "MAX_CONCURRENT_SESSIONS": "64",
        "WORKER_CAPACITY": "64",
        "REDIS_URL": "",
        "LOG_LEVEL": "WARNING",
    }
)

import django

django.setup()

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.management import call_command

from media_app.models import MediaFile
from models_app.registry import registry
from sessions_app import events
from sessions_app.models import TranscriptionSession
from sessions_app.runner import SessionWorker

GOAL_P95 = 2.5


def recording(seconds: float) -> MediaFile:
    """The recorded read prose of the evaluation set (two_cities), cut to `seconds`: the bench's own copy."""
    from transcriber_site import speech_set
    from transcriber_site.testing import write_audio

    audio = speech_set.clip("two_cities").audio[: int(seconds * 16000)]
    return MediaFile.import_file(write_audio(WORKDIR / "speech.flac", audio, channels=1), "two_cities.flac")


class Peak(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process()
        self.rss = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            self.rss = max(self.rss, self.process.memory_info().rss)
            time.sleep(0.05)


async def run_sessions(media: MediaFile, n: int) -> dict[str, float]:
    sessions = [
        await database_sync_to_async(TranscriptionSession.objects.create)(
            model_id="whisper",
            media=media,
            media_filename=media.filename,
            duration_secs=media.duration_secs,
            language="en",
        )
        for _ in range(n)
    ]
    layer = get_channel_layer()
    lags: list[float] = []
    levels: list[int] = [0]
    skipped: list[float] = [0.0]

    async def listen(session: TranscriptionSession) -> None:
        channel = await layer.new_channel()
        await layer.group_add(events.group(session.pk), channel)
        started_at = None  # the bench never pauses: the clock is wall time since the start
        while True:
            event = await layer.receive(channel)
            if event["type"] == "session.clock" and event["started_at"] is not None:
                started_at = event["started_at"]
            elif event["type"] == "session.subtitle" and event["is_final"] and started_at is not None:
                lags.append(time.time() - started_at - event["end"])
            elif event["type"] == "session.status":
                levels.append(event["degraded"])
                skipped.append(event.get("skipped_secs", 0.0))
            elif event["type"] == "session.end":
                return

    peak = Peak()
    peak.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    worker = SessionWorker(capacity=n)
    serving = asyncio.create_task(worker.serve())
    listeners = [asyncio.create_task(listen(s)) for s in sessions]
    await asyncio.sleep(0.05)  # the listeners are in their groups before the first event
    for s in sessions:
        await events.dispatch_start(s.pk)
    await asyncio.gather(*listeners)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    serving.cancel()
    await worker.shutdown("bench over")
    peak.running = False
    return {
        "p50": float(np.percentile(lags, 50)) if lags else float("nan"),
        "p95": float(np.percentile(lags, 95)) if lags else float("nan"),
        "max": max(lags, default=float("nan")),
        "finals": len(lags),
        "cores": cpu / wall,
        "rss_mb": peak.rss / 2**20,
        "level": max(levels),
        "skipped": max(skipped),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,5,10,20")
    parser.add_argument("--seconds", type=float, default=25.0)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    media = recording(args.seconds)
    registry.loaded("whisper")
    provider = registry.describe("whisper")["provider"]
    print(f"one worker process, bundled Whisper on {provider}, {media.duration_secs:.0f} s of speech per session")
    print("   N   finals lag p50   p95    max   CPU cores  peak RSS  degraded  skipped")
    best = 0
    for n in [int(x) for x in args.sessions.split(",")]:
        r = asyncio.run(run_sessions(media, n))
        ok = r["p95"] < GOAL_P95
        best = n if ok else best
        print(
            f"{n:4d}  {r['finals']:6d}  {r['p50']:5.2f} s {r['p95']:5.2f} s {r['max']:5.2f} s   {r['cores']:5.2f}"
            f"   {r['rss_mb']:6.0f} MB     {r['level']}     {r['skipped']:4.1f} s  {'ok' if ok else 'over 2.5 s'}"
        )
    print(f"largest N with p95 lag under {GOAL_P95} s: {best}")


if __name__ == "__main__":
    main()
