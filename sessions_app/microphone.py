"""An operator's microphone: the browser sends it over WebRTC, the server writes it into the session.

The page joins a microphone session's socket as any listener does, then sends `publish`
with an offer whose one audio track is sendonly. The socket first claims the session's
`publisher` (one UPDATE: only while it is free or already this socket's), then a
`Publisher` answers with a receive-only peer. Its task takes each decoded frame (48 kHz,
from aiortc's Opus decoder), resamples it to 16 kHz mono and pushes it into a LiveIngest
(sessions_app.sources), which writes it into the session's recording in step with the clock.
The worker transcribes and every web process relays that recording, as they do any other.

The task ends when the track ends, the peer fails, no audio comes for PUBLISH_IDLE_SECS
(the page has gone: its claim is let go so that its reconnect can publish again) or the
input ends; it then tells its socket (`on_end`), which closes it and releases the claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import av
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription, candidate_from_sdp
from django.db.models import Q

from media_app.audio import SAMPLE_RATE
from sessions_app.models import LIVE, Source, TranscriptionSession
from sessions_app.sources import LiveIngest
from sessions_app.webrtc import announce_public_ip, hub, peer_connection

log = logging.getLogger(__name__)

CONNECT_SECS = 15.0  # from the answer to the first frame: ICE and DTLS, through a TURN relay at worst
PUBLISH_IDLE_SECS = 5.0  # no frame this long (a muted track still sends silence): the page has gone
SOURCE_NAMES: dict[str, str] = {Source.RECORDING: "a recording", Source.STREAM: "a network stream"}


class Refused(Exception):
    """A publish the session does not take now; the message says why. `retry`: it may take it soon."""

    def __init__(self, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


def taken_sentence() -> str:
    return (
        "This session already takes a microphone from another connection; one microphone feeds a session "
        f"at a time. Close that page (a connection that has gone lets go within {PUBLISH_IDLE_SECS:.0f} s)."
    )


def claim(session_id: int, channel: str) -> TranscriptionSession:
    """Make `channel` the session's publisher, in one UPDATE that only a free (or its own) claim passes.

    The session, with its recording; Refused with the reason when it takes no microphone from it.
    """
    free = Q(publisher="") | Q(publisher=channel)
    open_input = Q(source=Source.MICROPHONE, state__in=LIVE, input_ended_at=None, media__isnull=False)
    if TranscriptionSession.objects.filter(free, open_input, pk=session_id).update(publisher=channel):
        return TranscriptionSession.objects.select_related("media").get(pk=session_id)
    session = TranscriptionSession.objects.filter(pk=session_id).first()
    if session is None:
        raise Refused(f"There is no session {session_id}.")
    if session.source != Source.MICROPHONE:
        kind = SOURCE_NAMES.get(session.source, session.source)
        raise Refused(f"Session {session_id} plays {kind}; only a microphone session takes a microphone.")
    if session.state not in LIVE or session.input_ended_at is not None or session.media_id is None:
        raise Refused(f"The input of session {session_id} has ended; it takes no more audio.")
    raise Refused(taken_sentence(), retry=True)


def release(session_id: int, channel: str) -> None:
    """`channel` lets go of the session's microphone (if it still holds it: a newer claim stays)."""
    TranscriptionSession.objects.filter(pk=session_id, publisher=channel).update(publisher="")


class Publisher:
    """The server's side of one published microphone: a receive-only peer and the task that writes its audio.

    `answer(offer)` once; `follow(clock)` with every clock of the session; `close()` when
    the socket lets go. `on_end(reason)` is awaited once if the task ends by itself (reason:
    a sentence, or None when the input ended); the socket then closes it.
    """

    _ids = itertools.count(1)

    def __init__(
        self, session_id: int, path: Path, clock: dict[str, Any], on_end: Callable[[str | None], Awaitable[None]]
    ) -> None:
        self.id = next(self._ids)
        self.session_id = session_id
        self.ingest = LiveIngest(path, clock)
        self.on_end = on_end
        self.pc = peer_connection()
        self.task: asyncio.Task[None] | None = None
        self.received_secs = 0.0  # of audio from the browser
        self.push_secs = 0.0  # time the loop spent resampling and writing it
        self.written_from = self.ingest.writer.frames  # where this connection's audio begins in the recording
        self.ended = False
        self.closed = False

        @self.pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and self.task is None:
                self.task = asyncio.create_task(self._receive(track), name=f"microphone-{session_id}")

        @self.pc.on("connectionstatechange")
        async def _state() -> None:
            if self.pc.connectionState == "failed" and not self.closed:
                await self._ended("The microphone's connection failed; the page sends it again.")

    @property
    def done(self) -> bool:
        return self.ingest.done

    def follow(self, clock: dict[str, Any]) -> None:
        self.ingest.follow(clock)

    async def answer(self, offer_sdp: str, public_ip: str = "") -> str:
        """The answer to the browser's offer (ValueError when the offer is not one this peer takes)."""
        kinds = [media.kind for media in SessionDescription.parse(offer_sdp).media]
        if kinds != ["audio"]:
            raise ValueError(f"the offer must have one audio track and nothing else, not {', '.join(kinds) or 'none'}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        if self.task is None:
            raise ValueError("the offer has no audio track to receive")
        for transceiver in self.pc.getTransceivers():
            transceiver.direction = "recvonly"  # nothing goes back to the operator's page
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return announce_public_ip(self.pc.localDescription.sdp, public_ip)

    async def add_candidate(self, candidate: dict[str, Any]) -> None:
        parsed = candidate_from_sdp(str(candidate["candidate"]).removeprefix("candidate:"))
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self.pc.addIceCandidate(parsed)

    async def _receive(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        wait = CONNECT_SECS
        reason: str | None = None
        while not self.ingest.done:
            try:
                frame = await asyncio.wait_for(track.recv(), wait)
            except TimeoutError:
                reason = f"No audio came from the microphone for {wait:.0f} s; the page sends it again."
                break
            except MediaStreamError:
                reason = "The microphone's track ended."
                break
            wait = PUBLISH_IDLE_SECS
            began = time.perf_counter()
            assert isinstance(frame, av.AudioFrame)
            self.received_secs += frame.samples / frame.sample_rate
            for out in resampler.resample(frame):
                self.ingest.push(out.to_ndarray().reshape(-1))
            self.push_secs += time.perf_counter() - began
        await self._ended(reason)

    async def _ended(self, reason: str | None) -> None:
        if self.ended or self.closed:
            return
        self.ended = True
        log.info("session %s: the microphone stopped: %s", self.session_id, reason or "its input ended")
        await self.on_end(reason)

    async def close(self) -> None:
        """Close the peer and the recording's writer; the task ends (cancelled if it still runs)."""
        if self.closed:
            return
        self.closed = True
        task = self.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.pc.close()
        finally:
            hub.peers.discard(self.pc)
            self.ingest.close()
        log.info(
            "session %s: microphone closed: %.1f s received, %.1f s written, %.1f s dropped, %.1f s padded; "
            "the loop spent %.2f ms a second of audio on it",
            self.session_id,
            self.received_secs,
            (self.ingest.writer.frames - self.written_from) / SAMPLE_RATE,
            self.ingest.dropped_secs,
            self.ingest.padded_secs,
            1000 * self.push_secs / max(self.received_secs, 1e-9),
        )
