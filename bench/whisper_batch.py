"""What a batch of Whisper passes costs against the same passes one by one, on this machine.

    .venv/bin/python bench/whisper_batch.py

For buffers of 3, 6 and 12 s of recorded speech (the evaluation set's `two_cities`), one
`WhisperEngine.transcribe` call of 1, 4 and 8 passes: wall and CPU time per call and per
pass. On the CPU the cost per pass falls little with the batch (0.75x to 1x here:
CTranslate2's encoder runs each item on the replica's one thread), while the batch's
first pass waits for its last (3 to 8 times as long); so on the CPU the engine takes one
pass per call and the pass scheduler gives each replica the most urgent one. The cost
grows with the buffer's length, which is why a busy stream keeps a shorter buffer
(`StreamingPolicy._trim_samples`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transcriber_site.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

import numpy as np

from models_app.engines.base import PassRequest
from models_app.registry import registry
from transcriber_site import speech_set

RUNS = 3


def main() -> None:
    engine = registry.loaded("whisper").engine
    audio = speech_set.clip("two_cities").audio

    def request(seconds: float, offset: int) -> PassRequest:
        start = offset * 16000
        return PassRequest(audio=np.ascontiguousarray(audio[start : start + int(seconds * 16000)]), language="en")

    engine.transcribe([request(5, 0)])  # warm
    print(f"bundled Whisper on {engine.provider}, {engine.parallel} replicas; one call at a time")
    print("buffer  batch   wall/call  CPU/call  wall/pass")
    for seconds in (3, 6, 12):
        for size in (1, 4, 8):
            requests = [request(seconds, i) for i in range(size)]
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(RUNS):
                engine.transcribe(requests)
            wall, cpu = (time.perf_counter() - wall) / RUNS, (time.process_time() - cpu) / RUNS
            per_pass = wall / size * 1000
            print(f"{seconds:4d} s  {size:5d}   {wall * 1000:6.0f} ms {cpu * 1000:6.0f} ms  {per_pass:6.0f} ms")


if __name__ == "__main__":
    main()
