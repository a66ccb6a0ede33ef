"""Live sources: what a microphone or a network stream sends, written into the session's recording.

Both kinds go through `LiveIngest`, which keeps the live recording (media_app.live) in step
with the session clock: audio is written while the session runs, dropped while it is
paused, and a gap (a stall, a lost connection) is filled with silence once audio comes
again, so that position p of the clock is always second p of the recording. The worker
transcribes and every web process relays by reading that file, as they do a recording.

A stream URL is checked before it is opened: its scheme, then every address its host
resolves to (no loopback, private, link-local or otherwise reserved address unless
STREAM_ALLOW_PRIVATE), then a bounded probe that decodes its first audio.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import numpy as np
from django.conf import settings

from media_app.audio import SAMPLE_RATE
from media_app.wavfile import LiveWriter
from sessions_app.models import LIVE_LEAD_SECS
from sessions_app.webrtc import position

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("http", "https", "rtsp", "rtsps", "srt", "rtmp", "rtmps")
GAP_SECS = 0.5  # audio this far behind the clock is a gap: silence fills it
MAX_DAMAGED_PACKETS = 50  # in a row: a stream that damaged is not audio we can decode


class StreamError(Exception):
    """A stream URL that cannot be used, or a stream that failed; the message says why."""


class LiveIngest:
    """Writes a live source's audio into the session's recording, in step with its clock.

    `follow(clock)` with every clock the session announces (the fields of
    TranscriptionSession.clock()); `push(samples)` with 16 kHz mono float32 audio as it
    arrives. Not thread-safe: one thread (or the event loop) calls both.
    """

    def __init__(self, path: Path, clock: dict[str, Any]) -> None:
        self.writer = LiveWriter(path)
        self.clock = dict(clock)
        self.dropped_secs = 0.0  # while paused, or before the clock started
        self.aligned = False  # its first audio has been placed at the clock's position
        self.padded_secs = 0.0

    def follow(self, clock: dict[str, Any]) -> None:
        self.clock.update(clock)

    @property
    def done(self) -> bool:
        """The input has ended or the session is over: nothing more is written."""
        return self.clock.get("live_input") is False or self.clock.get("state") in ("completed", "stopped", "error")

    @property
    def received_secs(self) -> float:
        return self.writer.frames / SAMPLE_RATE

    def push(self, samples: np.ndarray, now: float | None = None) -> None:
        if self.done or not len(samples):
            return
        if self.clock.get("state") != "running" or self.clock.get("started_at") is None:
            self.dropped_secs += len(samples) / SAMPLE_RATE  # starting or paused: not part of the session
            return
        now = time.time() if now is None else now
        # what has arrived just now belongs just ahead of the clock (it trails by LIVE_LEAD_SECS)
        due = round((position(self.clock, now) + LIVE_LEAD_SECS) * SAMPLE_RATE) - len(samples)
        gap = due - self.writer.frames
        # a gap while it sends is jitter up to GAP_SECS; the first audio of this writer (the start, a
        # reconnect) is put exactly where it belongs, so that the readers never run short
        if gap > GAP_SECS * SAMPLE_RATE or (gap > 0 and not self.aligned):
            self.writer.append(np.zeros(gap, np.int16))
            self.padded_secs += gap / SAMPLE_RATE
        self.aligned = True
        self.writer.append(samples)

    def close(self) -> None:
        self.writer.close()


# --- stream URLs ------------------------------------------------------------------------------


def check_stream_url(url: str) -> None:
    """StreamError unless `url` is a stream URL the server may open (scheme, host, addresses)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in STREAM_SCHEMES:
        raise StreamError(f"A stream URL starts with {', '.join(s + '://' for s in STREAM_SCHEMES)}.")
    host = parts.hostname
    if not host:
        raise StreamError("The stream URL has no host.")
    try:
        port = parts.port
    except ValueError:
        raise StreamError("The stream URL's port is not a number from 1 to 65535.") from None
    if settings.STREAM_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(host, port or None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise StreamError(f"The stream's host '{host}' does not resolve ({exc.strerror}).") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            raise StreamError(
                f"The stream's host '{host}' is a loopback, private or link-local address ({address}); "
                "streams from the server's own network are refused (STREAM_ALLOW_PRIVATE allows them)."
            )


def open_stream(url: str, timeout_secs: float) -> av.container.InputContainer:
    """The stream, opened; StreamError with FFmpeg's reason when it does not open in `timeout_secs`."""
    micros = str(int(timeout_secs * 1_000_000))
    # rw_timeout bounds every read of any protocol; timeout is http's and rtsp's own
    options = {"rw_timeout": micros, "timeout": micros, "reconnect": "0"}
    try:
        container = av.open(url, options=options, timeout=timeout_secs)
    except av.FFmpegError as exc:
        raise StreamError(f"The stream did not open: {_reason(exc)}.") from None
    if not container.streams.audio:
        container.close()
        raise StreamError("The stream has no audio.")
    return container


def probe_stream(url: str) -> None:
    """StreamError unless `url` passes check_stream_url and gives audio within LIVE_PROBE_SECS."""
    check_stream_url(url)
    deadline = time.monotonic() + settings.LIVE_PROBE_SECS
    container = open_stream(url, settings.LIVE_PROBE_SECS)
    try:
        for frame in container.decode(audio=0):
            if frame.samples:
                return
            if time.monotonic() > deadline:
                break
        raise StreamError(f"The stream gave no audio within {settings.LIVE_PROBE_SECS:.0f} s.")
    except av.FFmpegError as exc:
        raise StreamError(f"The stream's audio could not be decoded: {_reason(exc)}.") from None
    finally:
        container.close()


def _reason(exc: av.FFmpegError) -> str:
    return (getattr(exc, "strerror", None) or str(exc)).rstrip(".")


class StreamReader:
    """Reads a stream into a LiveIngest until it ends, stalls, fails or `stop` is set (in its own thread)."""

    def __init__(self, url: str, ingest: LiveIngest) -> None:
        self.url = url
        self.ingest = ingest
        self.stop = threading.Event()

    def run(self, on_end: Callable[[str | None], None]) -> None:
        """Read, then call `on_end` with None (the stream ended) or the sentence of its failure."""
        try:
            self._read()
            error = None
        except StreamError as exc:
            error = str(exc)
        except Exception as exc:  # anything FFmpeg raises mid-stream ends the session with its sentence
            log.exception("stream %s failed", self.url)
            error = f"The stream failed: {exc}"
        on_end(error)

    def _read(self) -> None:
        container = open_stream(self.url, settings.LIVE_STALL_SECS)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in self._frames(container):
                if self.stop.is_set() or self.ingest.done:
                    return
                for out in resampler.resample(frame):
                    self.ingest.push(out.to_ndarray().reshape(-1))
        finally:
            container.close()

    def _frames(self, container: av.container.InputContainer) -> Any:
        """The stream's audio frames; a damaged packet (a glitch on the wire) is skipped, not fatal."""
        stream = container.streams.audio[0]
        damaged = 0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
                frames = packet.decode()
            except StopIteration:
                return
            except (av.TimeoutError, av.ExitError):  # ExitError: PyAV's own read timeout interrupted FFmpeg
                raise StreamError(f"The stream stalled: no audio for {settings.LIVE_STALL_SECS:.0f} s.") from None
            except av.EOFError:
                return
            except av.InvalidDataError as exc:
                damaged += 1
                if damaged > MAX_DAMAGED_PACKETS:
                    raise StreamError(f"The stream's audio cannot be decoded: {_reason(exc)}.") from None
                continue
            except av.FFmpegError as exc:
                if "timed out" in str(exc).lower() or getattr(exc, "errno", None) == 110:
                    raise StreamError(f"The stream stalled: no audio for {settings.LIVE_STALL_SECS:.0f} s.") from None
                raise StreamError(f"The stream failed: {_reason(exc)}.") from None
            if frames:
                damaged = 0
            yield from frames
