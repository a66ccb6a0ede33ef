"""Speakers: what our own code around the Sortformer model costs, and what waiting for speakers adds to finals.

    .venv/bin/python bench/diarization.py [--seconds 30] [--stream-seconds 120] [--streams 1,4,8] [--sessions 1,4]

The real export (`diar_streaming_sortformer_4spk-v2.onnx`) cannot be downloaded on these machines, so
both parts run the scripted graph of its real shapes (`models_app/tests/sortformer_graphs.py`: the
export's input and output names, 128 mels, 512-wide embeddings, 4 speakers), which answers planned
activities (a two-voice conversation, the turns of `endgame_nagg_nell` over and over) almost at once.
Everything around the model is the real code on recorded speech (`transcriber_site/speech_set.py`).

1. Own code. N streams (1, 4, 8) on one Diarizer (one thread, as in the server), each pushed
   `--stream-seconds` of recorded speech in 0.1 s pieces as fast as possible, then finished, in both
   setups (low: chunk 6 + left 1 + right 7 frames of 80 ms, FIFO 188, cache 188; high: chunk 124 + 1 + 1,
   FIFO 124, cache 188). Per second of audio: ms in our code around the model (`SpeakerStream.own_secs`:
   features, NeMo's state update, the timeline; goal under 1 ms), ms in the model's step
   (`SpeakerStream.step_secs`: `InferenceSession.run` and its inputs; the scripted graph's, not the real
   model's), ms of the Diarizer's loop and the pushes beyond both (the run's wall time less the two), and
   model steps. Memory per stream: the bytes of every array a live stream holds at its peak (NeMo's
   state, audio and features not yet diarized, the look-ahead), stepped as the audio arrives in real
   time; its timeline grows by 16 bytes per 80 ms besides (0.7 MB an hour).
2. Final-subtitle latency. N sessions (1, 4) of `--seconds` of recorded speech on the bundled Whisper in
   one SessionWorker, once with diarize off and once with the scripted diarizer on (the server's
   DIAR_LATENCY setup, low by default), in the same run, measured as `bench/sessions.py` measures it
   (per word: its final's arrival at a listener minus the word's end on the session clock). The model's
   own time is almost nothing here, so the difference is the wait for the look-ahead (a final waits until
   the diarizer has covered its last word: chunk + right context = 1.04 s after the audio, in 0.48 s
   steps) and the scheduling; the real model's step time comes on top of it, once per step.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.management import call_command

# bench/sessions.py's set-up (its temporary database and media, its settings, django.setup()) serves this bench
# too: its sessions' final-word latency is what part 2 measures, with the speakers on and off
from bench.sessions import WORKDIR, recordings, start_listened, word_latencies
from media_app.models import MediaFile
from models_app import diarization
from models_app.diarization import Diarizer, SpeakerStream
from models_app.engines.onnx import chosen_providers
from models_app.engines.sortformer import FRAME_SECS, SETUPS, SortformerEngine
from models_app.registry import registry
from models_app.tests.sortformer_graphs import plan_from_turns, write_sortformer
from sessions_app.models import State, TranscriptSegment
from sessions_app.runner import SessionWorker
from transcriber_site import speech_set

GOAL_OWN_MS = 1.0  # our own code per second of audio, per stream
SAMPLE_RATE = 16000
PIECE = 1600  # 0.1 s, as a session's audio arrives
SLOTS = {"nagg": 0, "nell": 1}
STAGGER = 0.5  # seconds between two sessions' starts, as bench/sessions.py


class Counted(SortformerEngine):
    """The engine, counting its steps."""

    steps = 0

    def step(self, chunk: np.ndarray, cache: np.ndarray, fifo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.steps += 1
        return super().step(chunk, cache, fifo)


def conversation(seconds: float) -> np.ndarray:
    """[frames, 4] activity for `seconds`: the turns of endgame_nagg_nell (two voices) repeated."""
    turns = speech_set.reference_turns("endgame_nagg_nell")
    length = speech_set.clip("endgame_nagg_nell").seconds
    repeats = math.ceil(seconds / length)
    tiled = [(start + k * length, end + k * length, SLOTS[who]) for k in range(repeats) for start, end, who in turns]
    return plan_from_turns(tiled, seconds)


def speech(seconds: float) -> np.ndarray:
    """[samples] float32: the four recordings joined, over and over, for `seconds`."""
    joined = np.concatenate([clip.audio for clip in speech_set.recordings()])
    return np.resize(joined, int(seconds * SAMPLE_RATE)).astype(np.float32)


def held_bytes(stream: SpeakerStream) -> int:
    """Bytes of the arrays a stream holds besides its timeline's rows (a view counts its whole buffer, once)."""
    state = stream.state
    arrays = [state.cache, state.fifo, state.fifo_preds, state.silence, stream.timeline.provisional]
    arrays += [stream._audio, stream._features, *stream._arrived]
    if state.cache_preds is not None:
        arrays.append(state.cache_preds)
    buffers = {id(a.base if a.base is not None else a): (a.base if a.base is not None else a).nbytes for a in arrays}
    return sum(buffers.values())


def peak_held(engine: SortformerEngine, setup: str, audio: np.ndarray) -> int:
    """The most bytes one stream holds, stepped on this thread as its audio arrives 0.1 s at a time."""
    stream = SpeakerStream(Diarizer(engine, setup))
    peak = 0
    for start in range(0, len(audio), PIECE):
        stream.push(audio[start : start + PIECE].copy())  # a piece of its own, as a session reads it
        peak = max(peak, held_bytes(stream))
        while stream.due():
            stream.step(engine)
            peak = max(peak, held_bytes(stream))
    return peak


def own_code(engine: Counted, setup: str, n: int, audio: np.ndarray) -> dict[str, float]:
    """N streams on one Diarizer, pushed `audio` as fast as possible, then finished: ms per audio second."""
    diarizer = Diarizer(engine, setup, skip_after_secs=math.inf)  # pushed faster than real time: never skip
    engine.steps = 0
    started = time.perf_counter()
    streams = [diarizer.stream() for _ in range(n)]
    for start in range(0, len(audio), PIECE):
        for stream in streams:
            stream.push(audio[start : start + PIECE])
    for stream in streams:
        stream.finish(timeout=600)
    wall = time.perf_counter() - started
    diarizer.close()
    assert all(s.error is None and s.timeline.count == math.ceil(len(audio) // 160 / 8) for s in streams)
    audio_secs = n * len(audio) / SAMPLE_RATE
    own, model = sum(s.own_secs for s in streams), sum(s.step_secs for s in streams)
    return {
        "own": own / audio_secs * 1000,
        "model": model / audio_secs * 1000,
        "loop": (wall - own - model) / audio_secs * 1000,
        "steps": engine.steps / audio_secs,
    }


async def run_sessions(media: list[MediaFile], n: int, diarize: bool) -> dict[str, float]:
    """N sessions, one every STAGGER seconds, to their end: final-word latencies, and the speaker streams' times."""
    streams: list[SpeakerStream] = []
    create_stream = diarization.create_stream

    def kept() -> SpeakerStream | None:  # the runner's streams, for their times
        stream = create_stream()
        if stream is not None:
            streams.append(stream)
        return stream

    diarization.create_stream = kept
    worker = SessionWorker(capacity=64)
    serving = asyncio.create_task(worker.serve())
    try:
        listeners = []
        for i in range(n):
            listeners.append(await start_listened(media[i % len(media)], diarize=diarize))
            await asyncio.sleep(STAGGER)
        results = await asyncio.gather(*listeners)
    finally:
        diarization.create_stream = create_stream
        serving.cancel()
        await worker.shutdown("bench over")  # the final passes are cut short: only the live finals count
    latencies: list[float] = []
    for session_id, arrived, started_at, _ in results:
        latencies += await database_sync_to_async(word_latencies)(session_id, arrived, started_at)
    await database_sync_to_async(TranscriptSegment.objects.all().delete)()
    audio_secs = sum(s.received_secs for s in streams)
    return {
        "completed": sum(state == State.COMPLETED for *_, state in results),
        "words": len(latencies),
        "p50": float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "p95": float(np.percentile(latencies, 95)) if latencies else float("nan"),
        "step_ms": sum(s.step_secs for s in streams) / audio_secs * 1000 if audio_secs else float("nan"),
        "own_ms": sum(s.own_secs for s in streams) / audio_secs * 1000 if audio_secs else float("nan"),
        "skipped": sum(s.skipped_secs for s in streams),
    }


def scripted(name: str, seconds: float) -> Path:
    """The scripted export for a conversation of `seconds`, in WORKDIR/<name>/ (both setups have 1 frame of left
    context, the graph's)."""
    assert {setup.left for setup in SETUPS.values()} == {1}
    return write_sortformer(WORKDIR / name, conversation(seconds), left_context=1)


def install(path: Path) -> None:
    """The server's diarizer loaded afresh from `path`, as where DIAR_MODEL_PATH points."""
    settings.DIAR_MODEL_PATH = str(path)
    diarization.reset_for_tests()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="speech per session (part 2)")
    parser.add_argument("--stream-seconds", type=float, default=120.0, help="speech per stream (part 1)")
    parser.add_argument("--streams", default="1,4,8")
    parser.add_argument("--sessions", default="1,4")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)

    audio = speech(args.stream_seconds)
    engine = Counted(
        scripted("streams", args.stream_seconds),
        providers=chosen_providers(),
        intra_threads=settings.INTRA_THREADS,
        inter_threads=settings.INTER_THREADS,
    )
    print("Speakers on the scripted Sortformer graph of the export's real shapes (its names, 128 mels, 512-wide")
    print("embeddings, 4 speakers), which answers at once: its 'model' figures are not the real model's cost.")
    print()
    print(f"1. Our own code, per second of audio: {args.stream_seconds:.0f} s of recorded speech per stream, pushed")
    print(f"   0.1 s at a time as fast as possible into one Diarizer ({engine.provider}), then finished.")
    print("   own    SpeakerStream's code around the model (CPU time): features, state update, timeline; goal < 1 ms")
    print("   model  the model's step: InferenceSession.run and its inputs, of the scripted graph")
    print("   loop   the Diarizer's loop and the pushes, beyond both (the run's wall time less own and model)")
    print("   held   the arrays a live stream holds at its peak, stepped as its audio arrives in real time: NeMo's")
    print("          state, the audio and features not yet diarized, the look-ahead (its timeline: 0.7 MB an hour)")
    print("   setup  streams  own ms/s  model ms/s  loop ms/s  steps/s  held KB/stream")
    for setup in ("low", "high"):
        held = peak_held(engine, setup, audio)
        for n in [int(x) for x in args.streams.split(",")]:
            r = own_code(engine, setup, n, audio)
            verdict = "ok" if r["own"] < GOAL_OWN_MS else "MISSED"
            print(
                f"   {setup:5s}  {n:5d}    {r['own']:6.2f}     {r['model']:6.2f}     {r['loop']:6.2f}"
                f"    {r['steps']:5.2f}   {held / 1024:8.0f}      {verdict}"
            )

    media = recordings(args.seconds, 4)
    registry.loaded("whisper")
    install(scripted("sessions", args.seconds))
    served = SETUPS[settings.DIAR_LATENCY]
    print()
    print("2. Final-word latency: when a word's final reached a listener minus the word's end on the session clock,")
    print(f"   for N sessions of {args.seconds:.0f} s of recorded speech on the bundled Whisper")
    print(f"   ({registry.describe('whisper')['provider']}), diarize off, then on with the scripted diarizer")
    print(f"   ({settings.DIAR_LATENCY} setup: a final waits until the diarizer has covered its last word, which")
    print(f"   needs {served.latency_secs:.2f} s of look-ahead, in steps of {served.chunk * FRAME_SECS:.2f} s).")
    print("   The real model's step time adds to 'on' on top of this, once per step and session.")
    print("   step, own: the scripted model's run (wall time) and our code around it (the diarizer thread's CPU")
    print("   time) per audio second, beside Whisper: sharing the cores and caches costs more than in part 1")
    print("     N  diarize  words    p50      p95    on-off p50    p95   step ms/s  own ms/s  completed")
    for n in [int(x) for x in args.sessions.split(",")]:
        off = asyncio.run(run_sessions(media, n, diarize=False))
        on = asyncio.run(run_sessions(media, n, diarize=True))
        for name, r in (("off", off), ("on", on)):
            if r is on:
                extra = f"{on['p50'] - off['p50']:+6.2f} s  {on['p95'] - off['p95']:+6.2f} s"
                extra += f"    {r['step_ms']:6.2f}    {r['own_ms']:6.2f}"
            else:
                extra = " " * 40
            skipped = f"  skipped {r['skipped']:.1f} s" if r["skipped"] else ""
            print(
                f"   {n:3d}  {name:4s}   {r['words']:6d}  {r['p50']:5.2f} s  {r['p95']:5.2f} s  {extra}"
                f"    {r['completed']:.0f} of {n}{skipped}"
            )


if __name__ == "__main__":
    main()
