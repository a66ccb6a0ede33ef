"""Helpers the test suites share: recordings made on the spot, never downloaded."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction
from http.cookiejar import CookieJar
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from transcriber_site.cluster import free_port, wait_for_port

if TYPE_CHECKING:
    from models_app.streaming import TranscriptionSegment

BASE_DIR = Path(__file__).resolve().parent.parent
DEMO_PATH = BASE_DIR / "media" / "demo.wav"  # 12.8 s of espeak-ng speech, committed

# (container format, codec, sample rate) for each extension the tests write
FORMATS: dict[str, tuple[str, str, int]] = {
    "wav": ("wav", "pcm_s16le", 44100),
    "mp3": ("mp3", "libmp3lame", 44100),
    "flac": ("flac", "flac", 44100),
    "ogg": ("ogg", "libopus", 48000),
    "opus": ("ogg", "libopus", 48000),
    "m4a": ("ipod", "aac", 44100),
    "aac": ("adts", "aac", 44100),
    "mkv": ("matroska", "libopus", 48000),
    "webm": ("webm", "libopus", 48000),
}


def tone(seconds: float, rate: int = 16000, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, rate: int = 16000, channels: int = 2) -> Path:
    """Encode mono float `samples` at `rate` into `path`, in the format its extension names."""
    fmt, codec, out_rate = FORMATS[path.suffix.lstrip(".")]
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=out_rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        _encode(container, stream, samples, rate)
    return path


def write_video_with_audio(path: Path, samples: np.ndarray, rate: int = 16000, with_audio: bool = True) -> Path:
    """A small mp4 (h264-free: mpeg4 video) with, or without, an AAC audio track."""
    seconds = len(samples) / rate
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=44100, layout="stereo") if with_audio else None
        for i in range(max(1, int(seconds * 10))):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 7 % 255, np.uint8), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio is not None:
            _encode(container, audio, samples, rate)
    return path


def _encode(container: av.container.OutputContainer, stream: av.AudioStream, samples: np.ndarray, rate: int) -> None:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
    frame.sample_rate = rate
    formats = stream.codec_context.codec.audio_formats or []
    codec_format = formats[0].name if formats else "fltp"
    resampler = av.AudioResampler(format=codec_format, layout=stream.layout, rate=stream.rate)
    frame_size = stream.codec_context.frame_size or 1024
    fifo = av.AudioFifo()
    for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
        fifo.write(resampled)
    while chunk := fifo.read(frame_size, partial=True):
        for packet in stream.encode(chunk):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def words_of(text: str) -> list[str]:
    """Text as the words a WER counts: case, punctuation and hyphens do not count."""
    from models_app.policy import normalise

    return [w for w in (normalise(t) for t in re.split(r"[\s\-]+", text)) if w]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word edits (substitutions, insertions, deletions) per reference word."""
    ref, hyp = words_of(reference), words_of(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        new = [i]
        for j, h in enumerate(hyp, 1):
            new.append(min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (r != h)))
        row = new
    return row[-1] / max(len(ref), 1)


def ngram_counts(text: str, n: int) -> Counter[tuple[str, ...]]:
    words = words_of(text)
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def repeated_phrases(streamed: str, *baselines: str, n: int = 5) -> list[str]:
    """The n-grams the streamed text repeats more often than any baseline (offline, reference) says them.

    A phrase said once where the baseline never says it is a difference in wording, which
    the WER counts; this is about saying the same thing twice. A baseline phrase that
    differs in one word counts as the same phrase ("less heartly so" / "less hotly so"):
    the same model may hear a word differently in two contexts.
    """
    counts = [ngram_counts(text, n) for text in baselines]

    def said(gram: tuple[str, ...], count: Counter[tuple[str, ...]]) -> int:
        return sum(
            times for other, times in count.items() if sum(a != b for a, b in zip(gram, other, strict=False)) <= 1
        )

    return [
        " ".join(gram)
        for gram, times in ngram_counts(streamed, n).items()
        if times > 1 and times > max(said(gram, count) for count in counts)
    ]


def lost_sentence_starts(offline: str, streamed: str, reference: str | None = None) -> list[str]:
    """Sentence openings (first two words) of the offline text that the streamed text has fewer of.

    Where the words are known, only openings the reference has too count: a sentence the
    offline pass invented is not one the stream lost.
    """
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", offline.strip()) if len(words_of(s)) >= 2]
    openings = Counter(tuple(words_of(s)[:2]) for s in sentences)
    said = ngram_counts(streamed, 2)
    known = ngram_counts(reference, 2) if reference is not None else None
    return [
        " ".join(opening)
        for opening, times in openings.items()
        if said[opening] < times and (known is None or said[opening] < known[opening])
    ]


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def write_speech(path: Path, text: str, voice: str = "en-us", words_per_minute: int = 145) -> Path:
    """Synthesised speech (espeak-ng) as a wav at `path`."""
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(path), text], check=True)
    return path


class LiveServer:
    """The real server (`manage.py serve`, as in production) in a subprocess, on a free loopback port.

    It gets its own SQLite file and MEDIA_DIR under `root` unless `env` names others.
    `server="daphne"` runs `manage.py runserver` (daphne) instead, the development server.
    `token` is an operator's API token, made at start (`create_operator tests --token`):
    api_call(server, ...) sends it.
    """

    def __init__(self, root: Path, env: dict[str, str] | None = None, server: str = "uvicorn") -> None:
        self.root = root
        self.server = server
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.media_dir = Path((env or {}).get("MEDIA_DIR", root / "media"))
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}",
            "MEDIA_DIR": str(self.media_dir),
            "SECRET_KEY": "test-only",
            "PYTHONUNBUFFERED": "1",
            "ADMISSION_P95_SECS": "0",  # measured latency on a shared test machine: see conftest.py
            "DIAR_MODEL_PATH": str(root / "no-sortformer"),  # a downloaded model does not change what tests see
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = root / f"server-{self.port}.log"
        self.token = ""

    def __enter__(self) -> LiveServer:
        self.media_dir.mkdir(parents=True, exist_ok=True)
        manage = [sys.executable, str(BASE_DIR / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=self.env, check=True, cwd=BASE_DIR)
        made = subprocess.run(
            [*manage, "create_operator", "tests", "--token"],
            env=self.env,
            check=True,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
        )
        self.token = made.stdout.strip().splitlines()[-1]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*manage, "serve", "--port", str(self.port)]
            if self.server == "uvicorn"
            else [*manage, "runserver", "--noreload", f"127.0.0.1:{self.port}"],
            env=self.env,
            cwd=BASE_DIR,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.process, self.log_path)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def operator_headers(self) -> dict[str, str]:
        """The header that makes a request this server's operator's."""
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "_log"):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class WorkerProcess:
    """`manage.py transcription_worker` in a subprocess, with the environment of a LiveServer."""

    def __init__(self, env: dict[str, str], root: Path, name: str, capacity: int = 0) -> None:
        self.env = env
        self.log_path = root / f"worker-{name}.log"
        self.capacity = capacity
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WorkerProcess:
        self._log = self.log_path.open("wb")
        command = [sys.executable, str(BASE_DIR / "manage.py"), "transcription_worker"]
        if self.capacity:
            command += ["--capacity", str(self.capacity)]
        self.process = subprocess.Popen(command, env=self.env, cwd=BASE_DIR, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while b"taking sessions" not in self.log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log()}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL: the worker dies without a word, as a crashed machine would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def api_call(
    server: LiveServer | str,
    path: str,
    body: dict[str, Any] | None = None,
    method: str | None = None,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> Any:
    """JSON in, JSON out; raises urllib's HTTPError on 4xx/5xx.

    Against a LiveServer, the call is its operator's (its token); against a bare URL, anonymous
    unless `headers` say otherwise.
    """
    headers = {"Content-Type": "application/json", **(headers or {})}
    if isinstance(server, LiveServer):
        headers |= server.operator_headers
    request = urllib.request.Request(
        (server.url if isinstance(server, LiveServer) else server) + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
        method=method or ("POST" if body is not None else "GET"),
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def api_refusal(
    server: LiveServer | str, path: str, body: dict[str, Any] | None = None, timeout: float = 30.0
) -> tuple[int, str]:
    """The status and sentence of a call that must fail (api_call's); AssertionError if it succeeds."""
    try:
        api_call(server, path, body, timeout=timeout)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["error"]
    raise AssertionError(f"{path} was accepted")


def multipart(name: str, data: bytes, boundary: str = "XyZ") -> bytes:
    """A multipart/form-data body holding one file, the upload form's "file" field."""
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


def upload(base_url: str, token: str, path: Path, timeout: float = 60.0) -> Any:
    """POST a file to /api/media/upload as an operator (by token); the new recording's JSON."""
    request = urllib.request.Request(
        base_url + "/api/media/upload",
        data=multipart(path.name, path.read_bytes()),
        headers={"Content-Type": "multipart/form-data; boundary=XyZ", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class AudioListener:
    """A listener as a browser is one: the session's WebSocket and a receive-only aiortc peer.

    `messages` keeps every message but the offer (with "received_at", its arrival time.time());
    `audio` keeps each decoded frame as
    (arrival time.time(), pts at 48 kHz, mono float samples at 48 kHz).
    """

    def __init__(self, base_url: str, session_id: int | None) -> None:
        path = f"/ws/{session_id}" if session_id is not None else "/ws"
        self.url = base_url.replace("http://", "ws://") + path
        self.messages: list[dict[str, Any]] = []
        self.audio: list[tuple[float, int, np.ndarray]] = []
        self.ready_sent_at: float | None = None
        self.pc: Any = None
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.track_ended = asyncio.Event()
        self._arrived = asyncio.Condition()

    async def __aenter__(self) -> AudioListener:
        import websockets

        self.ws = await websockets.connect(self.url, max_size=None)
        self._tasks.append(asyncio.create_task(self._read()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        await self.ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if message["type"] == "offer":
                await self._answer(message["sdp"])
            else:
                message["received_at"] = time.time()  # when it arrived, for the latency figures
                self.messages.append(message)
                await self._inbox.put(message)

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def next(self, kind: str | None = None, within: float = 10.0) -> dict[str, Any]:
        """The next message (of type `kind`), waiting at most `within` seconds."""
        async with asyncio.timeout(within):
            while True:
                message = await self._inbox.get()
                if kind is None or message["type"] == kind:
                    return message

    async def start_audio(self) -> None:
        from aiortc import RTCPeerConnection

        self.pc = RTCPeerConnection()

        @self.pc.on("track")
        def _track(track: Any) -> None:
            self._tasks.append(asyncio.create_task(self._pull(track)))

        self.ready_sent_at = time.time()
        await self.send({"type": "ready"})

    async def _answer(self, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.send({"type": "answer", "sdp": self.pc.localDescription.sdp})

    async def _pull(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self.track_ended.set()
                return
            samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0].astype(np.float32) / 32768
            self.audio.append((time.time(), int(frame.pts), samples))
            async with self._arrived:
                self._arrived.notify_all()

    async def audio_for(self, seconds: float, within: float = 15.0) -> None:
        """Wait until `seconds` of audio have arrived."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: sum(len(s) for _, _, s in self.audio) >= seconds * 48000)

    def heard(self, since: float, until: float) -> np.ndarray:
        """The samples (48 kHz) that arrived between two times."""
        chunks = [s for at, _, s in self.audio if since <= at < until]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

    def finals(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "subtitle" and m["is_final"]]


def position(clock: dict[str, Any], at: float) -> float:
    """Where a session's clock (session_info's or a clock event's) stood at wall time `at`, in s."""
    until = clock["paused_at"] if clock["paused_at"] is not None else at
    return min(max(until - clock["started_at"] - clock["paused_secs"], 0.0), clock["duration_secs"])


async def clock_of(listener: AudioListener) -> dict[str, Any]:
    """The session's clock once it runs: from session_info if it ran already when the listener
    joined, else from the clock event every listener gets when it starts."""
    info = next((m for m in listener.messages if m["type"] == "session_info"), None)
    info = info or await listener.next("session_info")
    if info["session"]["clock"]["state"] == "running":
        return info["session"]["clock"]
    return await clock_event(listener, "running")


async def clock_event(listener: AudioListener, state: str) -> dict[str, Any]:
    """The next clock event that brings the session to `state`."""
    while True:
        message = await listener.next("clock", within=15)
        if message["state"] == state:
            return message


def best_match(heard_16k: np.ndarray, recording: np.ndarray, around: float, search: float = 1.5) -> tuple[float, float]:
    """(position in s, normalised correlation) where `heard_16k` best matches the recording near `around`.

    The correlation is computed by FFT: a direct one of seconds against seconds at 16 kHz takes
    seconds of CPU, during which a test's own listeners would stop taking their audio.
    """
    lo = max(int((around - search) * 16000), 0)
    hi = min(int((around + search) * 16000) + len(heard_16k), len(recording))
    window, heard = recording[lo:hi].astype(np.float64), heard_16k.astype(np.float64)
    size = 1 << (len(window) + len(heard)).bit_length()
    spectrum = np.fft.rfft(window, size) * np.conj(np.fft.rfft(heard, size))
    scores = np.fft.irfft(spectrum, size)[: len(window) - len(heard) + 1]
    squares = np.concatenate([[0.0], np.cumsum(window**2)])
    energy = np.sqrt(np.maximum(squares[len(heard) :] - squares[: -len(heard)], 0.0) * np.sum(heard**2))
    normalised = scores / np.maximum(energy, 1e-9)
    best = int(np.argmax(normalised))
    return (lo + best) / 16000, float(normalised[best])


@dataclass
class Differential:
    """One clip streamed and transcribed offline by the same model: the streaming code's own error."""

    clip: str
    offline: str
    streamed: str
    reference: str | None
    finals: list[TranscriptionSegment]

    @property
    def offline_wer(self) -> float | None:
        return word_error_rate(self.reference, self.offline) if self.reference else None

    @property
    def streamed_wer(self) -> float | None:
        return word_error_rate(self.reference, self.streamed) if self.reference else None

    @property
    def against_offline(self) -> float:
        """WER of the streamed text with the offline text as the reference."""
        return word_error_rate(self.offline, self.streamed)

    @property
    def repeated(self) -> list[str]:
        return repeated_phrases(self.streamed, self.offline, *([self.reference] if self.reference else []))

    @property
    def lost_starts(self) -> list[str]:
        return lost_sentence_starts(self.offline, self.streamed, self.reference)


def differential(
    clip: Any, model_id: str = "whisper", preset: str = "balanced", chunk_secs: float = 0.1
) -> Differential:
    """Stream `clip` (a `speech_set.Clip`) as fast as it goes and transcribe it offline."""
    from models_app.policy import join_words
    from models_app.registry import registry

    offline = join_words(registry.transcribe_offline(model_id, clip.audio))
    stream = registry.create_transcriber(model_id, preset=preset)
    finals: list[TranscriptionSegment] = []
    step = int(16000 * chunk_secs)
    for offset in range(0, len(clip.audio), step):
        finals += stream.push_audio(clip.audio[offset : offset + step]).finals
    finals += stream.finalize().finals
    return Differential(clip.name, offline, " ".join(s.text for s in finals), clip.reference, finals)


MP3_BYTES_PER_SEC = 8000  # 64 kbit/s CBR


def mp3_of(audio: np.ndarray) -> bytes:
    """16 kHz mono float32 audio as an mp3 (64 kbit/s CBR)."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=16000, layout="mono")
        assert isinstance(stream, av.AudioStream)
        stream.bit_rate = MP3_BYTES_PER_SEC * 8
        frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


class Radio:
    """An Icecast-like server on a free loopback port: /live.mp3 loops an mp3 for ever, in real time
    (after a first `burst_secs` sent at once, as Icecast does on connect); /stall.mp3 sends 2 s of
    it and then nothing; /page is HTML."""

    def __init__(self, mp3: bytes, burst_secs: float = 1.0) -> None:
        self.mp3 = mp3
        self.burst_secs = burst_secs
        self.port = free_port()
        radio = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/page":
                    self._head("text/html")
                    self.wfile.write(b"<html><body>not a stream</body></html>")
                    return
                if self.path not in ("/live.mp3", "/stall.mp3"):
                    self.send_error(404)
                    return
                self._head("audio/mpeg")
                radio.send(self.wfile, stall_after=2.0 if self.path == "/stall.mp3" else None)

            def _head(self, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Connection", "close")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def send(self, out: io.BufferedIOBase, stall_after: float | None) -> None:
        chunk = MP3_BYTES_PER_SEC // 10  # 0.1 s
        started = time.monotonic()
        sent = 0
        try:
            while not self.closed.is_set():
                at = sent % len(self.mp3)
                out.write(self.mp3[at : at + chunk])
                out.flush()
                sent += min(chunk, len(self.mp3) - at)
                if stall_after is not None and sent >= stall_after * MP3_BYTES_PER_SEC:
                    self.closed.wait()  # the connection stays open, and silent
                    return
                time.sleep(max(0.0, started + sent / MP3_BYTES_PER_SEC - self.burst_secs - time.monotonic()))
        except (BrokenPipeError, ConnectionResetError):
            return

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Radio:
        self.closed = threading.Event()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()


# --- an operator's microphone, as the page sends it (sessions_app.microphone) -------------------------

MIC_RATE = 16000
MIC_FRAME = 320  # 20 ms


class RecordingMicrophone(MediaStreamTrack):
    """A microphone that says `samples` (16 kHz mono float) in real time, 20 ms a frame.

    Then it ends (`then="end"`), says silence for ever (`"silence"`), or goes quiet without
    ending (`"hang"`, as a page whose network dropped). `first_at`: time.time() of the first frame.
    """

    kind = "audio"

    def __init__(self, samples: np.ndarray, then: str = "end") -> None:
        super().__init__()
        self.pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        self.then = then
        self.pts = 0
        self.started: float | None = None
        self.first_at: float | None = None
        self.said = asyncio.Event()  # all of `samples` has been sent

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self.started is None:
            self.started, self.first_at = now, time.time()
        await asyncio.sleep(max(0.0, self.started + self.pts / MIC_RATE - now))
        chunk = self.pcm[self.pts : self.pts + MIC_FRAME]
        if len(chunk) < MIC_FRAME:
            self.said.set()
            if self.then == "end":
                self.stop()
                raise MediaStreamError
            if self.then == "hang":
                await asyncio.Event().wait()
            chunk = np.pad(chunk, (0, MIC_FRAME - len(chunk)))
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = MIC_RATE, self.pts, Fraction(1, MIC_RATE)
        self.pts += MIC_FRAME
        return frame


class Operator:
    """The operator's page, as far as the microphone goes: the session's socket and a sendonly peer.

    `send_text` / `receive_text` are the socket's (a Channels communicator here, websockets
    against a real server); `messages` keeps every message the server sent.
    """

    def __init__(self, send_text: Callable[[str], Awaitable[None]], receive_text: Callable[[], Awaitable[str]]) -> None:
        self.send_text = send_text
        self.receive_text = receive_text
        self.messages: list[dict[str, Any]] = []
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pc: RTCPeerConnection | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = json.loads(await self.receive_text())
            self.messages.append(message)
            await self.inbox.put(message)

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_text(json.dumps(message))

    async def next(self, *kinds: str, within: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                message = await self.inbox.get()
                if not kinds or message["type"] in kinds:
                    return message

    async def publish(self, track: MediaStreamTrack) -> dict[str, Any]:
        """Offer `track` (aiortc puts its candidates in the offer); the server's publish-answer or error."""
        self.pc = pc = RTCPeerConnection()
        pc.addTransceiver(track, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        await self.send({"type": "publish", "sdp": pc.localDescription.sdp})
        answer = await self.next("publish-answer", "error")
        if answer["type"] == "publish-answer":
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        return answer

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader
        if self.pc is not None:
            await self.pc.close()


def signed_in(server: LiveServer) -> str:
    """The operator's session cookie, as a browser gets it from the sign-in link (`/?token=`)."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{server.url}/?token={server.token}", timeout=10).read()
    cookie = next(c for c in jar if c.name == "sessionid")
    return f"sessionid={cookie.value}"


@contextlib.asynccontextmanager
async def live_operator(server: LiveServer, session_id: int) -> AsyncIterator[Operator]:
    """An Operator on the real server's socket, signed in by its session cookie, joined."""
    import websockets

    url = f"{server.url.replace('http://', 'ws://')}/ws/{session_id}"
    async with websockets.connect(url, additional_headers={"Cookie": signed_in(server)}, max_size=None) as ws:
        operator = Operator(ws.send, ws.recv)  # type: ignore[arg-type]
        try:
            assert (await operator.next())["type"] == "session_info"
            yield operator
        finally:
            await operator.close()


class GatedMicrophone(RecordingMicrophone):
    """Silence until `go` is set (the session runs), then `samples`; `spoke_at`: time.time() of its first sample."""

    def __init__(self, samples: np.ndarray, then: str = "silence") -> None:
        super().__init__(samples, then)
        self.go = asyncio.Event()
        self.spoke_at: float | None = None
        self.silent_frames = 0

    async def recv(self) -> av.AudioFrame:
        if self.go.is_set():
            if self.spoke_at is None:
                self.spoke_at = time.time()
            frame = await super().recv()
            frame.pts = (frame.pts or 0) + self.silent_frames * MIC_FRAME
            return frame
        await asyncio.sleep(MIC_FRAME / MIC_RATE)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, MIC_FRAME), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = MIC_RATE, self.silent_frames * MIC_FRAME, Fraction(1, MIC_RATE)
        self.silent_frames += 1
        return frame
