"""Media library figures: conversion speed, and server memory while a 1 GB upload arrives.

    .venv/bin/python bench/media.py [--upload-mb 954]

Prints
* the conversion speed of a 10-minute mp3 (44.1 kHz stereo, 128 kb/s) to the library's
  16 kHz mono wav, as a multiple of real time (wall and CPU);
* the resident memory of the server process (`manage.py serve`, uvicorn, as in
  production) before, and its peak while a 1 GB upload is received and converted;
* the same for `manage.py runserver` (daphne) with a smaller upload, for comparison:
  daphne queues the whole body in memory and Twisted parses multipart bodies in memory.
Inputs are generated on the spot (nothing is committed); the upload is streamed from a
generator, so the client does not hold it either.
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transcriber_site.settings")

from media_app.audio import convert_to_wav
from transcriber_site.testing import LiveServer, write_audio


def speechlike(seconds: float, rate: int = 16000) -> np.ndarray:
    """A tone whose pitch and loudness wander, so the encoder has real work to do."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = 180 + 60 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return (0.3 * envelope * (np.sin(phase) + 0.3 * np.sin(3 * phase))).astype(np.float32)


def bench_conversion(workdir: Path) -> None:
    mp3 = write_audio(workdir / "ten-minutes.mp3", speechlike(600.0))
    wav = workdir / "out.wav"
    cpu0, wall0 = time.process_time(), time.perf_counter()
    stored = convert_to_wav(mp3, wav, mp3.name)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"conversion of a 10-minute mp3 ({mp3.stat().st_size / 1e6:.1f} MB, 44.1 kHz stereo):")
    print(f"  {stored.duration_secs:.0f} s of audio in {wall:.2f} s wall, {cpu:.2f} s CPU")
    print(f"  speed: {stored.duration_secs / wall:.0f}x real time (wall), {stored.duration_secs / cpu:.0f}x (CPU)")


def wav_stream(total_bytes: int, block: int = 1 << 20) -> Iterator[bytes]:
    """A 44.1 kHz stereo s16 wav of `total_bytes`, generated block by block."""
    data_bytes = total_bytes - 44
    yield b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    yield b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 44100, 44100 * 4, 4, 16)
    yield b"data" + struct.pack("<I", data_bytes)
    pattern = (np.repeat(speechlike(block / 4 / 44100, 44100), 2) * 32767).astype("<i2").tobytes()
    sent = 0
    while sent < data_bytes:
        chunk = pattern[: min(len(pattern), data_bytes - sent)]
        sent += len(chunk)
        yield chunk


class PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)


def bench_upload(workdir: Path, upload_bytes: int, server_kind: str) -> None:
    boundary = "benchboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.wav"\r\n'
        f"Content-Type: audio/wav\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    root = workdir / f"server-{server_kind}"
    root.mkdir()
    with LiveServer(root, env={"MAX_UPLOAD_SIZE_MB": "2048"}, server=server_kind) as server:
        assert server.process is not None
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        connection.request("GET", "/api/media", headers=server.operator_headers)  # the first runs the start-up scan
        connection.getresponse().read()
        baseline = psutil.Process(server.process.pid).memory_info().rss
        sampler = PeakRss(server.process.pid)
        sampler.start()
        started = time.perf_counter()

        def body() -> Iterator[bytes]:
            yield head
            yield from wav_stream(upload_bytes)
            yield tail

        connection.putrequest("POST", "/api/media/upload")
        connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        connection.putheader("Content-Length", str(len(head) + upload_bytes + len(tail)))
        connection.putheader("Authorization", server.operator_headers["Authorization"])
        connection.endheaders()
        for chunk in body():
            connection.send(chunk)
        sent = time.perf_counter()
        response = connection.getresponse()
        payload = response.read()
        done = time.perf_counter()
        sampler.stop.set()
        sampler.join()
    label = "manage.py serve (uvicorn)" if server_kind == "uvicorn" else "manage.py runserver (daphne)"
    minutes = upload_bytes / 176400 / 60
    print(f"{label}: upload of {upload_bytes / 1e9:.2f} GB (a {minutes:.0f}-minute 44.1 kHz stereo wav):")
    print(f"  status {response.status}: {payload[:120].decode(errors='replace')}")
    print(f"  sent in {sent - started:.1f} s, answered (converted) {done - sent:.1f} s later")
    before, peak = baseline / 2**20, sampler.peak / 2**20
    print(f"  server RSS before: {before:.0f} MiB, peak while receiving and converting: {peak:.0f} MiB")
    print(f"  peak minus before: {(sampler.peak - baseline) / 2**20:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upload-mb", type=float, default=1e9 / 2**20, help="size of the upload in MiB (default 1 GB)")
    parser.add_argument("--skip-upload", action="store_true")
    parser.add_argument(
        "--daphne-mb",
        type=float,
        default=100,
        help="upload size for the daphne comparison (0 to skip; it costs ~14x in RAM)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        workdir = Path(tmp)
        bench_conversion(workdir)
        if not args.skip_upload:
            bench_upload(workdir, int(args.upload_mb * 2**20), "uvicorn")
            if args.daphne_mb:
                bench_upload(workdir, int(args.daphne_mb * 2**20), "daphne")
    print(f"bench process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
