"""WebRTC audio: one source per session per web process, encoded once, fanned out.

`SessionAudio` follows the session clock (the same fields the worker follows): every
20 ms it takes the recording's audio at the clock's position (silence while starting
or paused), resamples it to 48 kHz and encodes it to Opus ONCE. Each listener's
`ListenerTrack` hands the same `av.Packet`s to its own RTCRtpSender, which then only
packetises and encrypts them. No listener has an encoder of its own.

The frame for recording position p leaves at server time started_at + pauses + p:
a listener's playout position is the clock's position minus its network and jitter
buffer delay, which the page measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import socket
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from django.conf import settings

log = logging.getLogger(__name__)

OPUS_RATE = 48000
FRAME_SECS = 0.02
FRAME_SAMPLES = int(OPUS_RATE * FRAME_SECS)  # 960
SOURCE_RATE = 16000
SOURCE_FRAME = int(SOURCE_RATE * FRAME_SECS)  # 320
TIME_BASE = Fraction(1, OPUS_RATE)
LISTENER_QUEUE = 25  # packets (0.5 s) a slow sender may fall behind before it loses the oldest
RESYNC_SECS = 0.1  # reading further than this from the clock's position jumps to it

# This web process, as listeners' rows name it.
SERVER_ID = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


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
    """The audio of one session in this process, for all of its listeners here."""

    def __init__(self, session_id: int, clock: dict[str, Any], path: Path) -> None:
        self.session_id = session_id
        self.clock = dict(clock)
        self.listeners: set[ListenerTrack] = set()
        self.file = soundfile.SoundFile(str(path))
        self.read_at: int | None = None  # next 16 kHz sample to read
        self.encoder = _opus_encoder()
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=OPUS_RATE)
        self.fifo = av.AudioFifo()
        self.pts = 0
        self.frames_sent = 0
        self.task: asyncio.Task[None] | None = None

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

    def position(self, now: float) -> float:
        """The session clock (as TranscriptionSession.position, from the fields the events carry)."""
        clock = self.clock
        if clock.get("ended_position_secs") is not None:
            return float(clock["ended_position_secs"])
        if clock.get("started_at") is None:
            return 0.0
        until = clock["paused_at"] if clock.get("paused_at") is not None else now
        played = until - clock["started_at"] - clock.get("paused_secs", 0.0)
        return min(max(played, 0.0), float(clock["duration_secs"]))

    @property
    def played_out(self) -> bool:
        """The recording has been played to its end."""
        running = self.clock.get("state") == "running"
        return running and self.read_at is not None and self.read_at >= self.file.frames

    @property
    def ended(self) -> bool:
        return self.clock.get("state") in ("completed", "stopped", "error")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        tick = 0
        try:
            while not self.ended:
                tick += 1
                await asyncio.sleep(max(0.0, started + tick * FRAME_SECS - loop.time()))
                for packet in self._encode(self._frame(time.time())):
                    for listener in list(self.listeners):
                        listener.put(packet)
                self.frames_sent += 1
                if (
                    self.clock.get("state") == "running"
                    and self.read_at is not None
                    and self.read_at >= self.file.frames
                ):
                    break  # the recording has been played to its end
        finally:
            for listener in list(self.listeners):
                listener.put(None)
            self.file.close()

    def _frame(self, now: float) -> av.AudioFrame:
        """The next 20 ms at 48 kHz: the recording at the clock's position, or silence."""
        if self.clock.get("state") == "running" and self.clock.get("started_at") is not None:
            due = int(self.position(now) * SOURCE_RATE)  # the clock's position now: this frame ends here
            if self.read_at is None or abs(self.read_at - (due - SOURCE_FRAME)) > RESYNC_SECS * SOURCE_RATE:
                self.read_at = max(due - SOURCE_FRAME, 0)
            self.file.seek(self.read_at)
            pcm = self.file.read(SOURCE_FRAME, dtype="int16", always_2d=False)
            self.read_at += len(pcm)
            pcm = np.pad(pcm, (0, SOURCE_FRAME - len(pcm)))
        else:
            pcm = np.zeros(SOURCE_FRAME, np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
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

    def _encode(self, frame: av.AudioFrame) -> list[av.Packet]:
        packets = self.encoder.encode(frame)
        for packet in packets:
            packet.time_base = TIME_BASE
        return packets

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


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

    def listen(self, session_id: int, clock: dict[str, Any], path: Path) -> ListenerTrack:
        source = self.sources.get(session_id)
        if source is None or source.task is None or source.task.done():
            source = SessionAudio(session_id, clock, path)
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

    def stats(self) -> dict[str, int]:
        return {
            "peers": len(self.peers),
            "audio_sources": len(self.sources),
            "audio_listeners": sum(len(s.listeners) for s in self.sources.values()),
        }


hub = AudioHub()


def peer_connection() -> RTCPeerConnection:
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))  # type: ignore[arg-type]
        for s in settings.ICE_SERVERS
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
