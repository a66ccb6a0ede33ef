"""N concurrent live sessions on the bundled Whisper in one worker process, on recorded speech.

    .venv/bin/python bench/sessions.py [--sessions 1,5,10,15,20,30] [--seconds 40] [--stagger 0.5]

For each N, N sessions are asked for, one every `--stagger` seconds, through the same
admission check as `POST /api/sessions` (`sessions_app.capacity.refusal`), and each
admitted one plays `--seconds` of recorded speech from the evaluation set
(`transcriber_site/speech_set.py`: the four recordings and their transformed copies,
joined; session i starts at clip i, so that the sessions do not say the same words at
the same moment). One `SessionWorker` runs them in this process, as the embedded server
does, with its heartbeat (which is what admission reads). The bench listens to every
session's group as a client would. Prints:
* final-word latency p50 and p95: per word, when its final arrived at the listener minus
  the word's end on the session clock;
* feeding lag: the session clock minus the audio pushed into the stream (max over the
  statuses), and whether any audio was skipped;
* the worker's CPU (cores busy on average); its resident memory at its peak while every
  session plays, and that per extra session over the first N's (the peak of the whole run,
  final passes over the whole recordings included, is printed last);
* how many sessions were admitted and how many refused, and whether every admitted
  session delivered its words (its live transcript has words, it completed).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
        "WORKER_HEARTBEAT_SECS": "1",
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
from models_app import scheduler
from models_app.registry import registry
from sessions_app import capacity, events
from sessions_app.models import State, TranscriptionSession, TranscriptSegment
from sessions_app.runner import SessionWorker
from transcriber_site import speech_set
from transcriber_site.testing import write_audio

GOAL_P95 = 2.5
SAMPLE_RATE = 16000


def recordings(seconds: float, count: int) -> list[MediaFile]:
    """`count` recordings of `seconds` each, joined from the evaluation set's clips, each starting at another clip."""
    clips = [c for c in speech_set.evaluation_set() if c.name != speech_set.PROGRAMME]
    made = []
    for i in range(count):
        pieces, total = [], 0
        for k in range(len(clips)):
            piece = clips[(i + k) % len(clips)].audio
            pieces.append(piece)
            total += len(piece)
            if total >= seconds * SAMPLE_RATE:
                break
        audio = np.concatenate(pieces)[: int(seconds * SAMPLE_RATE)]
        path = write_audio(WORKDIR / f"speech-{i}.flac", audio, channels=1)
        made.append(MediaFile.import_file(path, f"speech-{i}.flac"))
    return made


class Peak(threading.Thread):
    """The peak RSS, and the peak while every session plays (before the first ends and the
    final passes over whole recordings begin)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process()
        self.rss = 0
        self.playing_rss = 0
        self.playing = True
        self.running = True

    def run(self) -> None:
        while self.running:
            self.rss = max(self.rss, self.process.memory_info().rss)
            if self.playing:
                self.playing_rss = self.rss
            time.sleep(0.05)


def word_latencies(session_id: int, arrived: dict[int, float], started_at: float) -> list[float]:
    """Per word of the live transcript: when its row's final arrived minus the word's end on the session clock."""
    rows = TranscriptSegment.objects.filter(session_id=session_id, version="live").order_by("index")
    return [arrived[row.index] - started_at - end for row in rows if row.index in arrived for _, _, end in row.words]


Result = tuple[int, dict[int, float], float, str]  # session id, final index -> arrival, clock start, end state


async def start_listened(
    recording: MediaFile, on_event: Callable[[dict], None] | None = None, **fields: Any
) -> asyncio.Task[Result]:
    """A Whisper session of `recording`, started once a listener is in its group; the listener's task."""
    session = await database_sync_to_async(TranscriptionSession.objects.create)(
        model_id="whisper",
        media=recording,
        media_filename=recording.filename,
        duration_secs=recording.duration_secs,
        language="en",
        **fields,
    )
    listener = asyncio.create_task(listen(session, on_event))
    await asyncio.sleep(0.02)  # the listener is in the group before the first event
    await events.dispatch_start(session.pk)
    return listener


async def listen(session: TranscriptionSession, on_event: Callable[[dict], None] | None = None) -> Result:
    """Read the session's group to its end: when each final arrived, and where its clock started."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.group(session.pk), channel)
    started_at = None  # the bench never pauses: the clock is wall time since the start
    arrived: dict[int, float] = {}
    while True:
        event = await layer.receive(channel)
        if on_event is not None:
            on_event(event)
        if event["type"] == "session.clock" and event["started_at"] is not None:
            started_at = event["started_at"]
        elif event["type"] == "session.subtitle" and event["is_final"]:
            arrived[event["index"]] = time.time()
        elif event["type"] == "session.end":
            return session.pk, arrived, started_at or 0.0, event["state"]


async def run_sessions(media: list[MediaFile], n: int, stagger: float) -> dict[str, float]:
    peak = Peak()
    peak.start()
    statuses: list[dict] = []

    def seen(event: dict) -> None:
        if event["type"] == "session.status":
            statuses.append(event)
        elif event["type"] == "session.end":
            peak.playing = False  # RSS "while playing": until the first session ends

    cpu0, wall0 = time.process_time(), time.perf_counter()
    worker = SessionWorker(capacity=64)
    serving = asyncio.create_task(worker.serve())
    listeners, refused, reason = [], 0, ""
    for i in range(n):
        if refusal := await database_sync_to_async(capacity.refusal)("whisper"):
            refused, reason = refused + 1, refusal
        else:
            listeners.append(await start_listened(media[i % len(media)], seen))
        await asyncio.sleep(stagger)
    results = await asyncio.gather(*listeners)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    serving.cancel()
    await worker.shutdown("bench over")
    peak.running = False
    latencies: list[float] = []
    delivered = 0
    for session_id, arrived, started_at, state in results:
        words = await database_sync_to_async(word_latencies)(session_id, arrived, started_at)
        latencies += words
        delivered += bool(words) and state == State.COMPLETED
    await database_sync_to_async(TranscriptSegment.objects.all().delete)()
    return {
        "admitted": len(results),
        "refused": refused,
        "reason": reason,
        "delivered": delivered,
        "p50": float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "p95": float(np.percentile(latencies, 95)) if latencies else float("nan"),
        "words": len(latencies),
        "feed_lag": max((s.get("feed_lag_secs", 0.0) for s in statuses), default=0.0),
        "skipped": max((s.get("skipped_secs", 0.0) for s in statuses), default=0.0),
        "cores": cpu / wall,
        "rss_mb": peak.rss / 2**20,
        "playing_rss_mb": peak.playing_rss / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,5,10,15,20,30")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--stagger", type=float, default=0.5)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    media = recordings(args.seconds, 4)
    registry.loaded("whisper")
    provider = registry.describe("whisper")["provider"]
    print(f"one worker process, bundled Whisper on {provider}, {args.seconds:.0f} s of recorded speech per session")
    print(
        "   N  admitted refused  words  final-word p50    p95   feed lag  skipped  CPU cores"
        "  RSS playing  MB/session  peak RSS"
    )
    first_rss = None
    refusals = []
    for n in [int(x) for x in args.sessions.split(",")]:
        time.sleep(scheduler.WINDOW_SECS)  # what the last N measured is forgotten
        r = asyncio.run(run_sessions(media, n, args.stagger))
        first_rss = first_rss or (r["playing_rss_mb"], r["admitted"])
        per_session = (r["playing_rss_mb"] - first_rss[0]) / max(r["admitted"] - first_rss[1], 1)
        ok = r["p95"] <= GOAL_P95 and r["delivered"] == r["admitted"] and r["skipped"] == 0
        print(
            f"{n:4d}  {r['admitted']:6d}  {r['refused']:6d}  {r['words']:6d}     {r['p50']:5.2f} s  {r['p95']:5.2f} s"
            f"   {r['feed_lag']:5.2f} s  {r['skipped']:4.1f} s    {r['cores']:5.2f}   {r['playing_rss_mb']:6.0f} MB"
            f"     {per_session if r['admitted'] > first_rss[1] else float('nan'):5.1f}   {r['rss_mb']:6.0f} MB"
            f"   {'ok' if ok else 'MISSED'} ({r['delivered']} of {r['admitted']} delivered)"
        )
        if r["reason"]:
            refusals.append(f"N={n}: {r['reason']}")
    for line in refusals:
        print("refused with:", line)


if __name__ == "__main__":
    main()
