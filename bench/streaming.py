"""Streaming fidelity and speed of the bundled Whisper (tiny.en) through the streaming policy.

    .venv/bin/python bench/streaming.py [--presets balanced,low_latency,accurate] [--streams 1,5,10,15,20]

Prints, on the recorded-speech evaluation set (`transcriber_site/speech_set.py`: four
recordings, five transformed copies of each, a 112 s programme) and, beside it, on clips
synthesised with espeak-ng from known text (nothing is committed):
* per clip and preset, the differential judgement of `models_app/tests/test_streaming_fidelity.py`:
  WER of the streamed and the offline transcript against the known words (goal: streamed
  at most 1 point above offline), WER of streamed against offline, phrases said more often
  than offline says them, and offline sentence openings the stream lost (goal: none);
* latency of finals (when a final word was emitted minus the word's end, replaying the
  recordings in real time; goal p50 <= 1.0 s, p95 <= 2.0 s) and of partials (when a word
  first showed, in a partial or a final; goal p50 <= 0.5 s);
* CPU seconds per second of audio for one stream, and for N concurrent real-time streams
  of a recording in one process: the worst lag of feeding behind real time, p50/p95 final
  latency, CPU use, and the mean batch size; N streams are sustained while p95 final
  latency stays under 2.5 s and no stream's feeding falls 2 s behind.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transcriber_site.settings")

import django

django.setup()

from faster_whisper import decode_audio

from models_app.policy import normalise
from models_app.registry import registry
from models_app.streaming import TranscriptionChunk, Word
from transcriber_site import speech_set
from transcriber_site.testing import differential, words_of

TEXTS = [
    "Welcome to the live transcription server. Upload a recording, start a session, and invite your colleagues. "
    "Everyone hears the audio and reads the subtitles as the words are spoken.",
    "The city council met on Tuesday evening to discuss the new budget. Several members asked for more money for "
    "public transport, while others wanted to lower taxes. A final vote is expected next month.",
    "Scientists have discovered a new species of frog in the mountains of South America. The tiny animal is bright "
    "yellow and can jump very far for its size.",
    "To make a good cup of tea, first boil fresh water. Warm the pot, add one spoon of tea for each person, and let "
    "it steep for a few minutes before you pour.",
    "The train to London leaves from the main platform at half past nine. Passengers are reminded to keep their "
    "luggage with them at all times.",
    "Our company was founded with a simple idea. We wanted to make software that helps people work together, "
    "wherever they are, and we still do.",
]
CHUNK_SECS = 0.1
SUSTAINED_P95 = 2.5  # seconds: finals this late at the 95th percentile still count as live
SR = 16000


def synthesise(directory: Path) -> list[speech_set.Clip]:
    clips = []
    for i, text in enumerate(TEXTS):
        path = directory / f"clip{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
        clips.append(speech_set.Clip(f"espeak-{i}", decode_audio(str(path)), text, "espeak", None))
    return clips


@dataclass
class Replay:
    finals: list[tuple[Word, float]] = field(default_factory=list)  # (word, wall time since start when final)
    first_seen: list[tuple[Word, float]] = field(default_factory=list)  # words of partials, when first shown
    max_lag: float = 0.0

    @property
    def text(self) -> str:
        return "".join(w.text for w, _ in self.finals).strip()

    def record(self, chunk: TranscriptionChunk, at: float) -> None:
        for segment in chunk.segments:
            for word in segment.words:
                if segment.is_final:
                    self.finals.append((word, at))
                self.first_seen.append((word, at))

    def final_latencies(self) -> list[float]:
        return [at - w.end for w, at in self.finals]

    def partial_latencies(self) -> list[float]:
        """For each final word, when a word like it (same text, near the same time) first showed."""
        out = []
        for word, final_at in self.finals:
            seen = [
                at
                for w, at in self.first_seen
                if normalise(w.text) == normalise(word.text) and abs(w.start - word.start) < 0.6
            ]
            out.append(min([final_at, *seen]) - word.end)
        return out


def replay(preset: str, audio: np.ndarray, realtime: bool) -> Replay:
    stream = registry.create_transcriber("whisper", preset=preset)
    result = Replay()
    step = int(CHUNK_SECS * SR)
    started = time.perf_counter()
    fed = 0
    while fed < len(audio):
        if realtime:
            due = int((time.perf_counter() - started) * SR)
            if due < fed + step:
                time.sleep((fed + step - due) / SR)
                due = fed + step
            result.max_lag = max(result.max_lag, (due - fed - step) / SR)
            upto = min(len(audio), max(fed + step, due // step * step))
        else:
            upto = min(len(audio), fed + step)
        chunk = stream.push_audio(audio[fed:upto])
        fed = upto
        result.record(chunk, time.perf_counter() - started if realtime else stream.now)
    result.record(stream.finalize(), time.perf_counter() - started if realtime else stream.now)
    return result


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def fmt(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.1%}"


def bench_fidelity(clips: list[speech_set.Clip], presets: list[str]) -> None:
    print("fidelity: streamed against offline, same model and decoding (WER against the known words where known)")
    for preset in presets:
        print(f"  preset {preset}:")
        print(f"    {'clip':28s} {'offline':>7s} {'stream':>7s} {'vs off':>7s}  repeated / lost openings")
        failures, cpu, seconds = 0, 0.0, 0.0
        errors = {"streamed": 0.0, "offline": 0.0, "words": 0.0}  # over the clips with known words
        for clip in clips:
            cpu0 = time.process_time()
            result = differential(clip, preset=preset)
            cpu += time.process_time() - cpu0
            seconds += clip.seconds
            worse = (
                result.streamed_wer is not None
                and result.offline_wer is not None
                and result.streamed_wer > result.offline_wer + 0.01
            )
            if clip.reference and result.streamed_wer is not None and result.offline_wer is not None:
                words = len(words_of(clip.reference))
                errors["words"] += words
                errors["streamed"] += result.streamed_wer * words
                errors["offline"] += result.offline_wer * words
            bad = worse or result.repeated or result.lost_starts
            failures += bool(bad)
            print(
                f"    {clip.name:28s} {fmt(result.offline_wer):>7s} {fmt(result.streamed_wer):>7s}"
                f" {fmt(result.against_offline):>7s}  {len(result.repeated)} / {len(result.lost_starts)}"
                + (f"   <- {result.repeated[:2]} {result.lost_starts[:2]}" if bad else "")
            )
        print(
            f"    {failures} of {len(clips)} clips miss the fidelity goal; over the clips with known words,"
            f" streamed {errors['streamed']:.0f} and offline {errors['offline']:.0f} word errors in"
            f" {errors['words']:.0f} words ({errors['streamed'] / errors['words']:.1%} and"
            f" {errors['offline'] / errors['words']:.1%}); CPU {cpu / seconds:.3f} s per s of audio"
        )


def bench_latency(clips: list[speech_set.Clip], presets: list[str], label: str) -> None:
    for preset in presets:
        finals: list[float] = []
        partials: list[float] = []
        for clip in clips:
            result = replay(preset, clip.audio, realtime=True)
            finals += result.final_latencies()
            partials += result.partial_latencies()
        print(
            f"latency, {label}, preset {preset:12s} finals p50 {pct(finals, 50):.2f} s  p95 {pct(finals, 95):.2f} s"
            f"   partials p50 {pct(partials, 50):.2f} s  p95 {pct(partials, 95):.2f} s   ({len(finals)} words)"
        )


def bench_streams(audio: np.ndarray, counts: list[int], preset: str) -> None:
    runner = registry.loaded("whisper").runner
    print(f"concurrent real-time streams, preset {preset}, {len(audio) / SR:.0f} s of audio each:")
    for n in counts:
        results: list[Replay] = [Replay() for _ in range(n)]

        def run(i: int, results: list[Replay] = results) -> None:
            time.sleep(i * 0.05)  # streams do not start in the same instant in a real server
            results[i] = replay(preset, audio, realtime=True)

        calls0, passes0 = runner.stats.calls, runner.stats.passes
        cpu0, wall0 = time.process_time(), time.perf_counter()
        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        lag = max(r.max_lag for r in results)
        finals = [x for r in results for x in r.final_latencies()]
        batch = (runner.stats.passes - passes0) / max(runner.stats.calls - calls0, 1)
        verdict = "sustained" if pct(finals, 95) <= SUSTAINED_P95 and lag < 2.0 else "falls behind"
        print(
            f"  N={n:3d}: worst lag {lag:5.2f} s, finals p50 {pct(finals, 50):5.2f} s p95 {pct(finals, 95):5.2f} s,"
            f" CPU {cpu / wall:4.2f} cores,"
            f" mean batch {batch:4.1f}  -> {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="balanced,low_latency,accurate")
    parser.add_argument("--streams", default="1,5,10,15,20")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-fidelity", action="store_true")
    args = parser.parse_args()
    presets = args.presets.split(",")
    recorded = speech_set.evaluation_set()
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        synthetic = synthesise(Path(tmp))
    provider = registry.describe("whisper")["provider"]
    print(
        f"{len(recorded)} recorded clips ({sum(c.seconds for c in recorded):.0f} s) and {len(synthetic)} espeak-ng"
        f" clips ({sum(c.seconds for c in synthetic):.0f} s), Whisper on {provider}"
    )
    registry.loaded("whisper")
    if not args.skip_fidelity:
        bench_fidelity(recorded + synthetic, presets)
    if not args.skip_latency:
        bench_latency(speech_set.recordings(), presets, "recorded")
        bench_latency(synthetic, presets, "espeak")
    if args.streams:
        two_cities = speech_set.clip("two_cities").audio
        bench_streams(two_cities, [int(n) for n in args.streams.split(",")], presets[0])


if __name__ == "__main__":
    main()
