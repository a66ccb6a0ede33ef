"""Our own code's cost in the ONNX engines (Parakeet TDT, Canary), apart from the networks.

    .venv/bin/python bench/onnx_engines.py [--seconds 10] [--streams 1 4 8] [--runs 5]

Prints, per second of audio, for one stream and for several streams batched together:
* feature extraction (numpy log-mel, 128 bins), inside `transcribe`;
* everything else `transcribe` does outside `InferenceSession.run`: for Parakeet the
  greedy TDT loop and the words with times, for Canary its cached decoding loop and words.
The networks are synthetic graphs of the real shapes (1024-wide encoder frames, 8198
joint outputs = 8193 tokens + 5 durations, [2, 1, 640] LSTM states; Canary 16384
logits and a [10, 1, M, 1024] cache), scripted to emit about 3.5 Parakeet tokens and
4 Canary tokens per second, so the loops take the real number of steps on real-sized
arrays; the time spent inside `run` on them says nothing about the real networks and
is left out. Goal: features + Parakeet decoding under 2 ms per second of audio, under 10%
of the real encoder on a desktop CPU (published: about 35x real time, 29 ms per second).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transcriber_site.settings")

from models_app.engines.base import PassRequest
from models_app.engines.canary import CanaryEngine
from models_app.engines.parakeet import ParakeetEngine
from models_app.tests.onnx_graphs import (
    CANARY_SPECIALS,
    canary_decoder,
    canary_encoder,
    code_joint,
    script_encoder,
    write_canary,
    write_parakeet,
)

TDT_VOCAB = 8193  # Parakeet TDT 0.6B v3: 8192 tokens + blank
CANARY_VOCAB = 16384
WIDTH = 1024
FRAMES_PER_SECOND = 12.5
REAL_ENCODER_MS_PER_SECOND = 1000 / 35  # the published CPU speed of the real encoder
GOAL_MS = 2.0


class Timed:
    """An InferenceSession whose `run` time is added up."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session, self.secs, self.calls = session, 0.0, 0

    def __getattr__(self, name: str) -> Any:  # get_inputs() and the like, untimed
        return getattr(self.session, name)

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[Any]:
        started = time.perf_counter()
        try:
            return self.session.run(names, feeds)
        finally:
            self.secs += time.perf_counter() - started
            self.calls += 1


def timed_method(method: Callable[..., Any], totals: dict[str, float], key: str) -> Callable[..., Any]:
    """`method`, adding its time to `totals[key]` and the length of what it returns to `totals[key + ' items']`."""

    def wrapper(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            result = method(*args)
        finally:
            totals[key] += time.perf_counter() - started
        totals[key + " items"] += len(result)
        return result

    return wrapper


def tdt_script(seconds: float, seed: int = 0) -> np.ndarray:
    """Encoder frames [T', 1024] for the code joint: channel 0 the token, channel 1 the duration index."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((int(seconds * FRAMES_PER_SECOND) + 1, WIDTH), np.float32)
    emits = rng.random(len(frames)) < 0.6
    frames[:, 0] = np.where(emits, rng.integers(1, TDT_VOCAB - 1, len(frames)), TDT_VOCAB - 1)
    token_durations = rng.choice([1, 2], len(frames))
    blank_durations = rng.choice([1, 2, 3, 4], len(frames), p=[0.4, 0.3, 0.2, 0.1])
    frames[:, 1] = np.where(emits, token_durations, blank_durations)
    return frames


def build_parakeet(directory: Path, seconds: float) -> ParakeetEngine:
    pieces = ["<unk>"] + [("▁" if i % 3 == 0 else "") + f"t{i}" for i in range(1, TDT_VOCAB - 1)] + ["<blk>"]
    write_parakeet(directory, script_encoder(tdt_script(seconds)), code_joint(TDT_VOCAB, WIDTH, 640), pieces)
    return ParakeetEngine(directory)


def build_canary(directory: Path, seconds: float) -> CanaryEngine:
    pieces = [*CANARY_SPECIALS, "▁"]
    pieces += [("▁" if i % 2 == 0 else "") + f"w{i}" for i in range(CANARY_VOCAB - len(pieces))]
    script = [len(CANARY_SPECIALS) + 1 + i for i in range(64)]
    tokens = int(4 * seconds)  # about four tokens per second of speech
    decoder = canary_decoder(
        script, CANARY_VOCAB, pieces.index("<|endoftext|>"), count=tokens, layers=10, hidden=WIDTH, width=WIDTH
    )
    write_canary(directory, canary_encoder(width=WIDTH), decoder, pieces)
    return CanaryEngine(directory)


def measure(engine: Any, decoder_name: str, streams: int, seconds: float, runs: int) -> dict[str, float]:
    """Per second of audio: features (ms), the rest of `transcribe` outside `run` (ms), decoder calls
    and tokens; the median of `runs` batches of `streams` buffers."""
    rng = np.random.default_rng(1)
    audio = [(0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32) for _ in range(streams)]
    requests = [PassRequest(a, language="en") for a in audio]
    engine.transcribe(requests)  # warm up
    figures: dict[str, list[float]] = {"features": [], "loop": [], "steps": [], "tokens": []}
    for _ in range(runs):
        encoder, decoder = Timed(engine.encoder), Timed(getattr(engine, decoder_name))
        totals = dict.fromkeys(["features", "features items", "decode", "decode items"], 0.0)
        engine.encoder = encoder
        setattr(engine, decoder_name, decoder)
        engine.features = timed_method(type(engine).features.__get__(engine), totals, "features")
        engine.decode = timed_method(type(engine).decode.__get__(engine), totals, "decode")
        started = time.perf_counter()
        try:
            engine.transcribe(requests)
        finally:
            wall = time.perf_counter() - started
            engine.encoder = encoder.session
            setattr(engine, decoder_name, decoder.session)
            del engine.features, engine.decode
        total = streams * seconds
        figures["features"].append(1000 * totals["features"] / total)
        figures["loop"].append(1000 * (wall - totals["features"] - encoder.secs - decoder.secs) / total)
        figures["steps"].append(decoder.calls / total)
        figures["tokens"].append(totals["decode items"] / total)
    return {key: statistics.median(values) for key, values in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per stream (a streaming buffer)")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        parakeet = build_parakeet(Path(tmp) / "parakeet", args.seconds)
        canary = build_canary(Path(tmp) / "canary", args.seconds)
        print(
            f"Our own code per second of audio ({args.seconds:.0f} s buffers, median of {args.runs} runs, "
            f"{parakeet.provider}, {os.cpu_count()} cores); synthetic graphs of the real shapes."
        )
        header = "".join(f"{f'{n} stream' + ('s' if n > 1 else ''):>14}" for n in args.streams)
        print(f"{'':34}{header}")
        tdt = [measure(parakeet, "joint", n, args.seconds, args.runs) for n in args.streams]
        aed = [measure(canary, "decoder", n, args.seconds, args.runs) for n in args.streams]

        def row(label: str, values: list[float], unit: str = "ms") -> None:
            print(f"{label:34}" + "".join(f"{v:>11.2f} {unit}" for v in values))

        row("features (log-mel, 128 bins)", [f["features"] for f in tdt])
        row("Parakeet decoding + words", [f["loop"] for f in tdt])
        row("  features + Parakeet decoding", [f["features"] + f["loop"] for f in tdt])
        row("  (joint calls per second)", [f["steps"] for f in tdt], "/s")
        row("  (tokens per second)", [f["tokens"] for f in tdt], "/s")
        row("Canary decoding + words", [f["loop"] for f in aed])
        row("  features + Canary decoding", [f["features"] + f["loop"] for f in aed])
        row("  (decoder calls per second)", [f["steps"] for f in aed], "/s")
        row("  (tokens per second)", [f["tokens"] for f in aed], "/s")
        worst = max(f["features"] + f["loop"] for f in tdt)
        share = 100 * worst / REAL_ENCODER_MS_PER_SECOND
        verdict = "met" if worst < GOAL_MS else "NOT met"
        print(
            f"Goal: features + Parakeet decoding < {GOAL_MS:.0f} ms per second of audio: {verdict} "
            f"(worst {worst:.2f} ms, {share:.0f}% of the real encoder's ~{REAL_ENCODER_MS_PER_SECOND:.0f} ms "
            "at 35x real time)."
        )


if __name__ == "__main__":
    main()
