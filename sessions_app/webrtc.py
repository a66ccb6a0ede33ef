"""WebRTC audio: one source per session per web process, encoded once, fanned out.

`SessionAudio` follows the session clock (the same fields the worker follows). Every
20 ms, `SessionEncoder` takes the recording's audio at the clock's position (silence
while starting or paused), resamples it to 48 kHz and encodes it to Opus ONCE. Each
listener's `ListenerTrack` hands the same `av.Packet`s to its own RTCRtpSender, which
then only packetises and encrypts them. No listener has an encoder of its own.

The encoders of all the sessions this web process plays run in one child process,
`AudioProcess`, not on the event loop that carries every listener's WebRTC and
WebSocket, nor in a thread of this process: libsndfile, PyAV's resampler and libopus
release the GIL for each short C call, so a thread takes the GIL back from the loop
thousands of times a second, and the loop waited longer than with the work on it
(bench/loop_lag.py). The loop's share is one message per 20 ms for all sessions.

The frame for recording position p leaves at server time started_at + pauses + p:
a listener's playout position is the clock's position minus its network and jitter
buffer delay, which the page measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import re
import secrets
import signal
import socket
import time
import traceback
from fractions import Fraction
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from media_app.wavfile import GrowingWav
from sessions_app.turn import ice_servers

log = logging.getLogger(__name__)

OPUS_RATE = 48000
FRAME_SECS = 0.02
FRAME_SAMPLES = int(OPUS_RATE * FRAME_SECS)  # 960
SOURCE_RATE = 16000
SOURCE_FRAME = int(SOURCE_RATE * FRAME_SECS)  # 320
TIME_BASE = Fraction(1, OPUS_RATE)
LISTENER_QUEUE = 25  # packets (0.5 s) a slow sender may fall behind before it loses the oldest
RESYNC_SECS = 0.1  # reading further than this from the clock's position jumps to it
RESTART_SECS = 5.0  # an audio process that dies sooner than this after its start is not restarted
ENDED = ("completed", "stopped", "error")

# This web process, as listeners' rows name it.
SERVER_ID = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


def position(clock: dict[str, Any], now: float) -> float:
    """The session clock (as TranscriptionSession.position, from the fields the events carry)."""
    if clock.get("ended_position_secs") is not None:
        return float(clock["ended_position_secs"])
    if clock.get("started_at") is None:
        return 0.0
    until = clock["paused_at"] if clock.get("paused_at") is not None else now
    played = until - clock["started_at"] - clock.get("paused_secs", 0.0)
    return min(max(played, 0.0), float(clock["duration_secs"]))


class ListenerTrack(MediaStreamTrack):
    """One listener's audio: the session's packets, as they are encoded."""

    kind = "audio"

    def __init__(self, source: SessionAudio) -> None:
        super().__init__()
        self.source = source
        self._packets: asyncio.Queue[av.Packet | None] = asyncio.Queue(maxsize=LISTENER_QUEUE)
        self.dropped = 0

    def put(self, packet: av.Packet | None) -> None:
        if self._packets.full():  # a sender that cannot keep up loses old audio, not the present
            self._packets.get_nowait()
            self.dropped += 1
        self._packets.put_nowait(packet)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._packets.get()
        if packet is None:  # the session ended
            self.stop()
            raise MediaStreamError
        return packet

    def stop(self) -> None:
        super().stop()
        self.source.remove(self)


class SessionAudio:
    """The audio of one session in this process, for all of its listeners here.

    Its task lives as long as the source: it asks the audio process for the session's
    packets, hands them to every listener's track as they come, and ends the tracks when
    the recording has been played, the session ended, or the task was cancelled.
    """

    _keys = itertools.count(1)

    def __init__(self, session_id: int, clock: dict[str, Any], path: Path, audio: AudioProcess) -> None:
        self.session_id = session_id
        self.key = next(self._keys)  # this source in the audio process's messages (a session may get a new one)
        self.clock = dict(clock)
        self.path = path
        self.audio = audio
        self.listeners: set[ListenerTrack] = set()
        self.pts: int | None = None  # of the next packet, once one came: a restarted audio process goes on from it
        self.frames_sent = 0
        self.task: asyncio.Task[None] | None = None
        self._finished: asyncio.Future[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"audio-{self.session_id}")

    def add(self) -> ListenerTrack:
        track = ListenerTrack(self)
        self.listeners.add(track)
        return track

    def remove(self, track: ListenerTrack) -> None:
        self.listeners.discard(track)

    def follow(self, clock: dict[str, Any]) -> None:
        self.clock.update({k: v for k, v in clock.items() if k in self.clock})
        if self.ended:
            self.finish()
        else:
            self.audio.follow(self)

    @property
    def ended(self) -> bool:
        return self.clock.get("state") in ENDED

    async def _run(self) -> None:
        self._finished = asyncio.get_running_loop().create_future()
        if self.ended:
            self._finished.set_result(None)
        else:
            self.audio.open(self)
        try:
            await self._finished
        finally:
            self.audio.close(self)
            for listener in list(self.listeners):
                listener.put(None)

    def deliver(self, packets: list[tuple[bytes, int]]) -> None:
        """One frame's packets from the audio process, to every listener."""
        for data, pts in packets:
            packet = av.Packet(data)
            packet.pts = pts
            packet.time_base = TIME_BASE
            for listener in list(self.listeners):
                listener.put(packet)
            self.pts = pts + FRAME_SAMPLES
        self.frames_sent += 1

    def finish(self) -> None:
        """The audio is over: the task ends the listeners' tracks."""
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class SessionEncoder:
    """One session's recording as Opus packets at the clock's position (in the audio process)."""

    def __init__(self, clock: dict[str, Any], path: str, go_on_at: int | None = None) -> None:
        self.clock = dict(clock)
        self.file = GrowingWav(path)  # a live source's recording grows while it plays
        self.read_at: int | None = None  # next 16 kHz sample to read
        self.encoder = _opus_encoder()
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=OPUS_RATE)
        self.fifo = av.AudioFifo()
        self.pts = 0  # of the next frame; its packet comes out with the encoder's delay subtracted
        self.go_on_at = go_on_at  # the first packet's pts, where a previous audio process stopped
        self.shift = 0

    @property
    def frames(self) -> int:
        """16 kHz samples there are to play: the recording's, or what a live source has sent so far."""
        return min(self.file.frames, round(float(self.clock["duration_secs"]) * SOURCE_RATE))

    @property
    def played_out(self) -> bool:
        """The recording has been played to its end (a live source's, once its input has ended)."""
        running = self.clock.get("state") == "running" and not self.clock.get("live_input")
        return running and self.read_at is not None and self.read_at >= self.frames

    def next_packets(self, now: float) -> list[tuple[bytes, int]]:
        """The next 20 ms, encoded: (Opus packet, pts at 48 kHz) for each packet."""
        packets = self.encode(self.frame(now))
        if packets and self.go_on_at is not None:
            self.shift, self.go_on_at = self.go_on_at - int(packets[0].pts or 0), None
        return [(bytes(packet), int(packet.pts or 0) + self.shift) for packet in packets]

    def read(self, now: float) -> np.ndarray:
        """The 20 ms of the recording that end at the clock's position `now`, or silence: int16 [320]."""
        if self.clock.get("state") != "running" or self.clock.get("started_at") is None:
            return np.zeros(SOURCE_FRAME, np.int16)
        # rounded, not truncated: int(n / 16000 * 16000) is n - 1 for some n, and the last sample would not be read
        frames = self.frames  # a live recording grows: looked at once per read
        due = min(round(position(self.clock, now) * SOURCE_RATE), frames)
        if self.read_at is None or abs(self.read_at - (due - SOURCE_FRAME)) > RESYNC_SECS * SOURCE_RATE:
            self.read_at = max(due - SOURCE_FRAME, 0)
        pcm = self.file.read(self.read_at, min(self.read_at + SOURCE_FRAME, frames), dtype=np.int16)
        self.read_at += len(pcm)
        return np.pad(pcm, (0, SOURCE_FRAME - len(pcm)))

    def frame(self, now: float) -> av.AudioFrame:
        """The next 20 ms at 48 kHz: the recording at the clock's position, or silence."""
        frame = av.AudioFrame.from_ndarray(self.read(now).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SOURCE_RATE
        for resampled in self.resampler.resample(frame):
            self.fifo.write(resampled)
        out = self.fifo.read(FRAME_SAMPLES)
        if out is None:  # the resampler's first call holds back a few samples
            out = av.AudioFrame.from_ndarray(np.zeros((1, FRAME_SAMPLES), np.int16), format="s16", layout="mono")
            out.sample_rate = OPUS_RATE
        out.pts = self.pts
        out.time_base = TIME_BASE
        self.pts += FRAME_SAMPLES
        return out

    def encode(self, frame: av.AudioFrame) -> list[av.Packet]:
        packets = self.encoder.encode(frame)
        for packet in packets:
            packet.time_base = TIME_BASE
        return packets

    def close(self) -> None:
        self.file.close()


class AudioProcess:
    """The child process that encodes the audio of every session with listeners in this web process.

    Commands go to it over a pipe: ("open", key, clock, path, pts), ("follow", key, clock),
    ("close", key). Every 20 ms it answers with one message for all its sessions:
    [(key, [(packet, pts), ...], done)], done being None, "played" or the traceback of a failure.
    It is started by the first source (or by `start()`), and restarted, with its sources, if it dies.
    """

    def __init__(self) -> None:
        self.sources: dict[int, SessionAudio] = {}
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.started_at = 0.0

    def open(self, source: SessionAudio) -> None:
        self.sources[source.key] = source
        if self.conn is None:
            self.start()  # it opens every source
        else:
            self._send(("open", source.key, source.clock, str(source.path), source.pts))

    def follow(self, source: SessionAudio) -> None:
        if source.key in self.sources:
            self._send(("follow", source.key, source.clock))

    def close(self, source: SessionAudio) -> None:
        if self.sources.pop(source.key, None) is not None:
            self._send(("close", source.key))

    def start(self) -> None:
        """Start the process (it takes about 0.3 s to import what it needs), and open every source in it.

        The first source starts it; starting it with the web server spares the first listener that wait.
        """
        if self.conn is not None:
            return
        context = multiprocessing.get_context("spawn")  # not fork: this process has threads and a running loop
        mine, theirs = context.Pipe()
        self.process = context.Process(target=make_audio, args=(theirs,), name="audio", daemon=True)
        self.process.start()
        theirs.close()
        self.conn = mine
        self.started_at = time.monotonic()
        asyncio.get_running_loop().add_reader(mine.fileno(), self._receive)
        for source in self.sources.values():
            self._send(("open", source.key, source.clock, str(source.path), source.pts))

    def _send(self, command: tuple[Any, ...]) -> None:
        if self.conn is None:
            return
        with contextlib.suppress(OSError):  # it has died: _receive sees the end of its pipe
            self.conn.send(command)

    def _receive(self) -> None:
        """On the loop, when the audio process has written: its messages, to the sources."""
        assert self.conn is not None
        try:
            while self.conn.poll():
                for key, packets, done in self.conn.recv():
                    source = self.sources.get(key)
                    if source is None:
                        continue  # closed while the message was on its way
                    source.deliver(packets)
                    if done is not None:
                        if done != "played":
                            log.error("session %s: the audio failed: %s", source.session_id, done.strip())
                        source.finish()
        except (EOFError, OSError):
            self._died()

    def _died(self) -> None:
        exitcode = self.process.exitcode if self.process is not None else None
        self._disconnect()
        if not self.sources:
            return
        sessions = sorted({s.session_id for s in self.sources.values()})
        if time.monotonic() - self.started_at < RESTART_SECS:
            log.error("the audio process died again (exit code %s); the audio of sessions %s ends", exitcode, sessions)
            for source in list(self.sources.values()):
                source.finish()
        else:
            log.error("the audio process died (exit code %s); restarting it for sessions %s", exitcode, sessions)
            self.start()

    def _disconnect(self) -> BaseProcess | None:
        process, conn = self.process, self.conn
        self.process, self.conn = None, None
        if conn is not None:
            asyncio.get_running_loop().remove_reader(conn.fileno())
            conn.close()
        return process

    async def stop(self) -> None:
        """Close its pipe (it exits when it reads the end) and wait for it to exit."""
        process = self._disconnect()
        if process is not None:
            await asyncio.to_thread(process.join, 5)
            if process.is_alive():
                process.kill()


Answer = tuple[int, list[tuple[bytes, int]], str | None]  # (key, [(packet, pts), ...], done)


def make_audio(conn: Connection) -> None:
    """The audio process: every 20 ms, the next packets of every session it was given, in one message.

    It exits when the web process closes the pipe (or dies): that is its only way to stop.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the web process stops it
    sessions: dict[int, SessionEncoder] = {}
    answers: list[Answer] = []  # sources that could not be opened, then this tick's packets
    started, tick = time.monotonic(), 0
    try:
        while True:
            if not sessions and not answers:
                conn.poll(None)  # nothing to play: wait for a command, then tick from now
                started, tick = time.monotonic(), 0
            tick += 1
            while conn.poll(max(0.0, started + tick * FRAME_SECS - time.monotonic())):
                answers += _command(conn.recv(), sessions)
            for key, encoder in list(sessions.items()):
                answers.append(_next(key, encoder))
                if answers[-1][2] is not None:
                    sessions.pop(key).close()
            if answers:
                conn.send(answers)
                answers = []
    except (EOFError, OSError):  # the web process closed the pipe, or has gone
        pass
    finally:
        for encoder in sessions.values():
            encoder.close()


def _next(key: int, encoder: SessionEncoder) -> Answer:
    try:
        packets = encoder.next_packets(time.time())
    except Exception:  # this session's audio ends; the others go on
        return key, [], traceback.format_exc()
    return key, packets, "played" if encoder.played_out else None


def _command(command: tuple[Any, ...], sessions: dict[int, SessionEncoder]) -> list[Answer]:
    """Apply one command of the web process; a source that cannot be opened is answered as done, with why."""
    kind, key, *args = command
    if kind == "open":
        clock, path, go_on_at = args
        try:
            sessions[key] = SessionEncoder(clock, path, go_on_at)
        except Exception:
            return [(key, [], traceback.format_exc())]
    elif kind == "follow" and key in sessions:
        sessions[key].clock.update(args[0])
    elif kind == "close" and key in sessions:
        sessions.pop(key).close()
    return []


def _opus_encoder() -> av.AudioCodecContext:
    encoder = av.CodecContext.create("libopus", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.sample_rate = OPUS_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 48000
    encoder.time_base = TIME_BASE
    encoder.options = {"application": "audio", "frame_duration": "20"}
    return encoder


class AudioHub:
    """The audio sources of this process: created with a session's first listener here,
    closed with its last, or when the session ends."""

    def __init__(self) -> None:
        self.sources: dict[int, SessionAudio] = {}
        self.peers: set[RTCPeerConnection] = set()
        self.audio = AudioProcess()

    def listen(self, session_id: int, clock: dict[str, Any], path: Path) -> ListenerTrack:
        source = self.sources.get(session_id)
        if source is None or source.task is None or source.task.done():
            source = SessionAudio(session_id, clock, path, self.audio)
            source.start()
            source.task.add_done_callback(lambda _: self._forget(session_id, source))  # type: ignore[union-attr]
            self.sources[session_id] = source
        return source.add()

    def _forget(self, session_id: int, source: SessionAudio) -> None:
        if self.sources.get(session_id) is source:
            del self.sources[session_id]

    def follow(self, session_id: int, clock: dict[str, Any]) -> None:
        if source := self.sources.get(session_id):
            source.follow(clock)

    async def release(self, track: ListenerTrack) -> None:
        track.stop()
        source = track.source
        if not source.listeners and self.sources.get(source.session_id) is source:
            await source.close()

    async def close_all(self) -> None:
        for pc in list(self.peers):
            await pc.close()
        for source in list(self.sources.values()):
            await source.close()
        await self.audio.stop()

    def stats(self) -> dict[str, int]:
        return {
            "peers": len(self.peers),
            "audio_sources": len(self.sources),
            "audio_listeners": sum(len(s.listeners) for s in self.sources.values()),
        }


hub = AudioHub()


def peer_connection() -> RTCPeerConnection:
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_servers("server")
    ]
    pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
    hub.peers.add(pc)

    @pc.on("connectionstatechange")
    async def _closed() -> None:
        if pc.connectionState == "closed":
            hub.peers.discard(pc)

    return pc


_HOST_CANDIDATE = re.compile(r"^a=candidate:(\S+) (\d+) (\S+) (\d+) (\S+) (\d+) typ host(.*)$")


def announce_public_ip(sdp: str, public_ip: str) -> str:
    """Add, for each host candidate, the same candidate at PUBLIC_IP (a 1:1 NAT's outside address).

    aiortc offers the addresses of its interfaces; behind NAT the browser must be told
    the public one. The private candidates stay, for listeners on the same network.
    """
    if not public_ip:
        return sdp
    lines = []
    for line in sdp.splitlines():
        lines.append(line)
        if m := _HOST_CANDIDATE.match(line):
            foundation, component, transport, priority, address, port, rest = m.groups()
            if address != public_ip and ":" not in address:
                fields = [f"{foundation}p", component, transport, str(int(priority) - 1), public_ip, port]
                lines.append(f"a=candidate:{' '.join(fields)} typ host{rest}")
    return "\r\n".join(lines) + "\r\n"
