"""Our NeMo engines' own code against onnx-asr 0.12.0's, on the same audio and the same graphs.

    .venv/bin/python -m pip install --no-deps --target /tmp/onnxasr onnx-asr==0.12.0  # beside, not a dependency
    .venv/bin/python bench/nemo_vs_onnx_asr.py /tmp/onnxasr [--seconds 60] [--runs 5]

Without the path it prints our figures alone. Three workloads, from the bundled demo
recording (tiled): one recording of `--seconds` (our engine cuts it in windows of at
most 30 s; onnx-asr feeds it whole), one batch of eight live passes of 2-15 s, and one
10 s pass. Printed, per second of audio (median of `--runs`):
* features: `NemoEngine.features` against onnx-asr's `pad_list` + `NemoPreprocessorNumpy`
  on the same buffers (goal: ours / theirs <= 1.0);
* own code: all of `transcribe` (theirs: `recognize_batch`, with log-probabilities, as we
  give confidences) outside `InferenceSession.run`, on the synthetic graphs of the real
  shapes that bench/onnx_engines.py builds (goal: ours / theirs <= 1.0);
* the encoder's feature frames fed (batch x longest) per real frame (goal: ours <= 1.05).
The graphs' own run time says nothing about the real networks and is left out.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_engines import Timed, build_canary, build_parakeet

from media_app.audio import read_audio
from models_app.engines.base import PassRequest
from models_app.engines.onnx import NemoEngine

DEMO = Path(__file__).resolve().parent.parent / "media" / "demo.wav"
LIVE_SECONDS = [12.0, 3.5, 7.2, 9.9, 15.0, 2.1, 5.5, 11.3]
# the attributes that hold each engine's sessions, role -> name
OUR_SESSIONS = {
    "parakeet": {"encoder": "encoder", "joint": "joint"},
    "canary": {"encoder": "encoder", "decoder": "decoder"},
}
THEIR_SESSIONS = {
    "parakeet": {"encoder": "_encoder", "decoder_joint": "_decoder_joint"},
    "canary": {"encoder": "_encoder", "decoder": "_decoder"},
}


def workloads(seconds: float) -> dict[str, list[np.ndarray]]:
    demo = read_audio(DEMO)
    speech = np.tile(demo, int(np.ceil((seconds + 60) * 16000 / len(demo))))
    live = [speech[int(i * 16000) : int((i + s) * 16000)] for i, s in enumerate(LIVE_SECONDS)]
    return {
        f"one {seconds:.0f} s recording": [speech[: int(seconds * 16000)]],
        "8 live passes, 2-15 s": live,
        "one 10 s pass": [speech[16000:176000]],
    }


class Counted(Timed):
    """A Timed encoder session that also counts the feature frames fed and the real ones."""

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.fed = self.real = 0

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[Any]:
        batch, _, frames = feeds["audio_signal"].shape
        self.fed += batch * frames
        self.real += int(np.minimum(feeds["length"], frames).sum())
        return super().run(names, feeds)


def every(call: Callable[[], Iterable[Any]]) -> Callable[[], list[Any]]:
    """`call`, reading all it yields (onnx-asr returns its results lazily)."""
    return lambda: list(call())


def median_secs(call: Callable[[], Any], runs: int) -> float:
    call()  # warm up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def own_code(owner: Any, names: dict[str, str], call: Callable[[], Any], runs: int) -> tuple[float, float]:
    """Median seconds of `call` outside the `run` of the sessions `owner` holds, and the
    encoder's frames fed per real one. names: role -> the attribute holding its session."""
    call()  # warm up
    own, ratio = [], 1.0
    for _ in range(runs):
        sessions = {role: (Counted if role == "encoder" else Timed)(getattr(owner, n)) for role, n in names.items()}
        for role, name in names.items():
            setattr(owner, name, sessions[role])
        started = time.perf_counter()
        try:
            call()
        finally:
            wall = time.perf_counter() - started
            for role, name in names.items():
                setattr(owner, name, sessions[role].session)
        own.append(wall - sum(s.secs for s in sessions.values()))
        encoder = sessions["encoder"]
        assert isinstance(encoder, Counted)
        ratio = encoder.fed / encoder.real
    return statistics.median(own), ratio


def their_model(kind: str, directory: Path) -> Any:
    """onnx-asr's model class on our directory, with its numpy preprocessor."""
    from onnx_asr.models.nemo import NemoConformerAED, NemoConformerTdt
    from onnx_asr.preprocessors.numpy_preprocessor import NemoPreprocessorNumpy

    files = {role: directory / f"{role}-model.onnx" for role in THEIR_SESSIONS[kind]}
    files |= {"vocab": directory / "vocab.txt", "config": directory / "config.json"}
    model_class = NemoConformerTdt if kind == "parakeet" else NemoConformerAED
    return model_class(files, NemoPreprocessorNumpy, {"providers": ["CPUExecutionProvider"]})


def compare(audios: list[np.ndarray], ours: dict[str, NemoEngine], theirs: dict[str, Any], runs: int) -> None:
    """Print one workload's rows: per second of audio, ours, onnx-asr's and the ratio."""
    seconds = sum(len(a) for a in audios) / 16000

    def row(name: str, mine: float, other: float | None, unit: str = "ms") -> None:
        other_text = f"{other:>9.3f} {unit}" if other is not None else f"{'-':>12}"
        ratio = f"   ({mine / other:.2f}x)" if other and unit == "ms" else ""
        print(f"  {name:36}{mine:>9.3f} {unit}{other_text}{ratio}")

    engine = ours["parakeet"]
    mine = median_secs(lambda: engine.features(audios), runs)
    other = None
    if theirs:
        from onnx_asr.utils import pad_list

        preprocess = theirs["parakeet"]._preprocessor
        other = median_secs(lambda: preprocess(*pad_list(audios)), runs) * 1000 / seconds
    row("features (log-mel, 128 bins)", mine * 1000 / seconds, other)
    requests = [PassRequest(a, language="en") for a in audios]
    for kind, model in ours.items():
        mine, fed = own_code(model, OUR_SESSIONS[kind], functools.partial(model.transcribe, requests), runs)
        other, other_fed = None, None
        if theirs:
            from onnx_asr.utils import pad_list

            options: dict[str, Any] = {"need_logprobs": True} if kind == "parakeet" else {"language": "en"}
            recognize = functools.partial(theirs[kind].recognize_batch, *pad_list(audios), **options)
            other, other_fed = own_code(theirs[kind], THEIR_SESSIONS[kind], every(recognize), runs)
            other *= 1000 / seconds
        row(f"{kind}: transcribe, own code", mine * 1000 / seconds, other)
        row(f"{kind}: encoder frames fed / real", fed, other_fed, unit="x ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx_asr", nargs="?", help="the directory that holds the onnx_asr package (see above)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the one recording")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.onnx_asr:
        sys.path.insert(0, args.onnx_asr)
        import onnx_asr

        print(f"onnx-asr {onnx_asr.__version__} from {Path(onnx_asr.__file__ or '').parent}")
    else:
        print("No onnx-asr given: our figures only (the docstring says how to install it beside).")

    with tempfile.TemporaryDirectory() as tmp:
        ours: dict[str, NemoEngine] = {
            "parakeet": build_parakeet(Path(tmp) / "parakeet", args.seconds + 1),
            "canary": build_canary(Path(tmp) / "canary", args.seconds + 1),
        }
        theirs = {kind: their_model(kind, Path(tmp) / kind) for kind in ours} if args.onnx_asr else {}
        print(f"Own code per second of audio, median of {args.runs} runs, synthetic graphs of the real shapes.")
        print(f"{'':38}{'ours':>12}{'onnx-asr':>12}   (ours / theirs)")
        for label, audios in workloads(args.seconds).items():
            print(f"{label} ({sum(len(a) for a in audios) / 16000:.1f} s of audio)")
            compare(audios, ours, theirs, args.runs)


if __name__ == "__main__":
    main()
