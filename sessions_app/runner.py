"""The worker: plays sessions through their transcribers, by the session clock.

One `SessionWorker` per process (inside the web server in the embedded default, or
`manage.py transcription_worker` processes with Redis). It takes "session.start"
messages from the "transcription" channel while it has room, and runs each session
as one asyncio task that owns it: read the stored wav up to the clock's position,
push the new audio into the stream (in a thread: inference never blocks the loop),
publish subtitles, a status about once a second, and the end or the error.

When a session completes, the worker makes its `final` transcript in the background: one
offline pass over the whole recording at BACKGROUND priority (it never slows a live pass),
written in one transaction, then announced to the session's group.

Inference never holds up the intake: the model's pass scheduler (`models_app.scheduler`)
runs each stream's passes when due, and the run collects what they found every tick.
A shared model that cannot keep up stretches every stream's passes alike; such a stream
reports `degraded` 1 (no partials) in its status and on the row. Should the run itself
fall `SKIP_AFTER_SECS` behind the clock (a starved machine), the audio behind is skipped,
counted in `skipped_secs`, with `degraded` 2.

The database never stalls the play: finals are written by a background writer (and
announced once saved, in order), so a database locked for a minute delays the saved
transcript, not the transcription; state changes are retried until it answers again.
The intake and heartbeat loops are supervised (`transcriber_site.lib.supervise`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import soundfile
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from media_app.live import finish_live_media
from media_app.wavfile import GrowingWav
from models_app import diarization
from models_app.batching import BACKGROUND
from models_app.diarization import SpeakerStream, Timeline
from models_app.policy import StreamingPolicy
from models_app.registry import ModelError, registry
from models_app.streaming import SAMPLE_RATE, TranscriptionChunk, TranscriptionSegment, Word
from models_app.transcript import CueBuilder, CuePiece
from sessions_app import events
from sessions_app.capacity import WorkerLoad
from sessions_app.models import (
    ENDED,
    LIVE,
    Source,
    State,
    TranscriptionSession,
    TranscriptSegment,
    TranscriptVersion,
    TransitionError,
)
from sessions_app.sources import LiveIngest, StreamReader
from transcriber_site.lib.supervise import Supervised

log = logging.getLogger(__name__)

TICK_SECS = 0.1  # how often a run looks at the clock
STATUS_SECS = 1.0
REFRESH_SECS = 0.5  # how often the worker re-reads its sessions' clocks from the database


SKIP_AFTER_SECS = 10.0  # the run this far behind the clock skips audio...
SKIP_KEEPS_SECS = 2.0  # ...all but this much of it
SKIPPED_SHOWN_SECS = 10.0  # a run that skipped audio says so (degraded 2) for this long
FEED_THREADS = 4  # read and push the sessions' audio
SPEAKER_WAIT_SECS = 3.0  # the longest a final waits for its speaker (models_app.diarization)
FINAL_PASSES_AT_ONCE = 2  # each holds a pool thread while it waits behind live passes
# The database may be locked (SQLite, past its 30 s timeout) or gone a while (PostgreSQL
# restarting): a state change is tried again for this long before the session gives up.
DB_UNAVAILABLE = (OperationalError, InterfaceError)
DB_RETRY_SECS = 180.0


async def retrying(fn: Any, *args: Any) -> Any:
    """Run a database call in a thread; while the database is unavailable, try again with backoff."""
    deadline = time.monotonic() + DB_RETRY_SECS
    delay = 0.5
    while True:
        try:
            return await database_sync_to_async(fn)(*args)
        except DB_UNAVAILABLE as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database unavailable (%s); trying again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class StreamFeed:
    """A stream session's reader, in a thread of its own for as long as the stream plays.

    Its end (the stream ended, or failed with a sentence) is handed back to the event loop.
    """

    def __init__(self, url: str, ingest: LiveIngest) -> None:
        self.reader = StreamReader(url, ingest)
        self.ingest = ingest
        self.ended = False
        self.error: str | None = None  # why it ended, when it failed
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()

        def ended(error: str | None) -> None:
            loop.call_soon_threadsafe(self._ended, error)

        self.thread = threading.Thread(target=self.reader.run, args=(ended,), name="stream", daemon=True)
        self.thread.start()

    def _ended(self, error: str | None) -> None:
        self.ended, self.error = True, error

    async def close(self) -> None:
        self.reader.stop.set()
        if self.thread is not None:
            # a read blocked in FFmpeg returns within its timeout (LIVE_STALL_SECS)
            await asyncio.get_running_loop().run_in_executor(None, self.thread.join, settings.LIVE_STALL_SECS + 5)
        if self.thread is None or not self.thread.is_alive():
            self.ingest.close()


class SessionRun:
    """One session in this worker: owned by one task from claim to end."""

    def __init__(self, worker: SessionWorker, session: TranscriptionSession) -> None:
        self.worker = worker
        self.session = session
        self.level = 0
        self.skipped_secs = 0.0
        self.feed_lag_secs = 0.0  # the clock's position minus the audio pushed into the stream
        self.skipped_at = -SKIPPED_SHOWN_SECS  # when audio was last skipped (monotonic)
        self.lag_secs = 0.0
        self.fed = 0  # samples pushed into the stream
        self.index = 0  # of the next live row
        self.cues = CueBuilder()  # the live transcript's cues, built as the finals come
        self.speakers: SpeakerStream | None = None  # its diarization, when the session has one
        # finals waiting for their speakers: (word, its segment's confidence, when it came, monotonic)
        self.waiting: list[tuple[Word, float | None, float]] = []
        self.last_speaker: int | None = None
        self.partial: TranscriptionSegment | None = None  # the stream's latest partial
        self.unsaved: list[TranscriptSegment] = []  # finals waiting for the database, in order
        self.writer: asyncio.Task[None] | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def id(self) -> int:
        return self.session.pk

    def follow(self, clock: dict[str, Any]) -> None:
        """Adopt the clock as the database has it now (pause, resume, stop by anyone)."""
        for name, value in clock.items():
            setattr(self.session, name, value)

    async def run(self) -> None:
        """Load the stream, start the clock and play; whatever goes wrong ends the session in error."""
        session = self.session
        source: GrowingWav | None = None
        feed: StreamFeed | None = None
        stream: StreamingPolicy | None = None
        try:
            stream = await self.worker.in_thread(
                registry.create_transcriber,
                session.model_id,
                language=session.language or None,
                target_language=session.target_language or None,
                preset=session.preset,
            )
            stream.schedule()
            if session.diarize:
                self.speakers = await self.worker.in_thread(diarization.create_stream)
                if self.speakers is None:
                    log.warning("session %s: no speakers: %s", self.id, diarization.unavailable_reason())
            path = await database_sync_to_async(lambda: session.media.path if session.media else None)()
            if path is None or not path.exists():
                raise ModelError("The recording of this session has been deleted.")
            source = await self.worker.in_thread(GrowingWav, str(path))
            await retrying(session.start_clock)
            if session.source == Source.STREAM:
                feed = StreamFeed(session.source_url, LiveIngest(path, session.clock()))
                feed.start()
            await self.play(stream, source, feed)
        except TransitionError:
            pass  # stopped meanwhile, by the API or a sweeper: nothing more to do
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, ModelError):
                log.exception("session %s: failed", self.id)
            message = str(exc) if isinstance(exc, ModelError) else f"Transcription failed: {exc}"
            with contextlib.suppress(TransitionError):
                await retrying(session.fail, message)
        finally:
            if stream is not None:
                stream.close()
            if self.speakers is not None:
                self.speakers.close()
            if feed is not None:
                await feed.close()
            if source is not None:
                source.close()
            if session.is_live_source:
                with contextlib.suppress(Exception):  # the recording's row learns its final length
                    await database_sync_to_async(self.finish_recording)()
            if self.waiting:  # stopped while finals waited for their speakers: they are kept, as they are
                self.release_finals(wait=False)
                self.save_soon()
            if self.writer is not None and not self.writer.done():
                with contextlib.suppress(Exception):  # the rows that can still be saved are
                    await self.writer

    async def play(self, stream: StreamingPolicy, source: GrowingWav, feed: StreamFeed | None = None) -> None:
        session = self.session
        next_status = 0.0
        watch = InputWatch(session) if session.is_live_source else None
        while True:
            if session.state in ENDED:
                return
            if feed is not None:
                feed.ingest.follow(session.clock())
            if watch is not None and await watch.check(source.frames, feed):
                continue  # the input ended or the session failed: the row has changed
            now = time.time()
            if session.started_at is not None and now - session.started_at.timestamp() > settings.SESSION_TIMEOUT_SECS:
                await database_sync_to_async(session.stop)(
                    f"Stopped after {settings.SESSION_TIMEOUT_SECS} s, the SESSION_TIMEOUT_SECS limit."
                )
                return
            # rounded, not truncated: int(n / 16000 * 16000) is n - 1 for some n, and the last sample never came
            frames = source.frames  # a live recording grows
            target = min(round(session.position(now) * SAMPLE_RATE), frames)
            feed_lag = (target - self.fed) / SAMPLE_RATE
            if feed_lag > SKIP_AFTER_SECS:
                skip = target - int(SKIP_KEEPS_SECS * SAMPLE_RATE) - self.fed
                await self.push(stream, np.zeros(skip, np.float32))  # keeps the stream's clock; no passes on silence
                self.skipped_secs += skip / SAMPLE_RATE
                self.skipped_at = time.monotonic()
                log.warning("session %s: %.1f s behind, skipped %.1f s of audio", self.id, feed_lag, skip / SAMPLE_RATE)
            if target > self.fed:
                await self.push(stream, await self.worker.in_thread(source.read, self.fed, target))
            await self.publish(stream.collect())
            self.note_pace(stream, feed_lag)
            if self.played_all(frames) and session.state == State.RUNNING:
                ending = await self.worker.in_thread(stream.finalize)
                if self.speakers is not None:
                    await self.worker.in_thread(self.speakers.finish)
                await self.publish(ending)
                await self.saved()
                await retrying(session.complete)
                speakers = self.speakers if self.speakers is not None and self.speakers.error is None else None
                self.worker.start_final_pass(session, speakers.timeline if speakers is not None else None)
                return
            self.save_soon()
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + STATUS_SECS
                await self.send_status()
            await asyncio.sleep(TICK_SECS)

    def note_pace(self, stream: StreamingPolicy, feed_lag: float) -> None:
        """How far behind the audio the final words are, and the degradation level it means."""
        self.feed_lag_secs = feed_lag
        self.lag_secs = feed_lag + stream.behind_secs
        level = 2 if time.monotonic() - self.skipped_at < SKIPPED_SHOWN_SECS else int(stream.stretched)
        if level != self.level:
            log.info("session %s: degradation level %d -> %d", self.id, self.level, level)
            self.level = level
            self.session.degraded = level  # saved on the row with the next heartbeat

    def finish_recording(self) -> None:
        """A live session's recording keeps what the session played, however it ended."""
        session = self.session
        session.refresh_from_db()
        if session.media is not None:
            finish_live_media(session.media, session.position())

    def played_all(self, frames: int) -> bool:
        """A recording is played to its end; a live source's input has ended and what it sent is played."""
        session = self.session
        if not session.is_live_source:
            return self.fed >= frames
        return session.input_ended_at is not None and self.fed >= min(
            frames, round(session.duration_secs * SAMPLE_RATE)
        )

    async def push(self, stream: StreamingPolicy, samples: np.ndarray) -> None:
        if len(samples):
            if self.speakers is not None:
                self.speakers.push(samples)
            chunk = await self.worker.in_thread(stream.push_audio, samples)
            self.fed += len(samples)
            await self.publish(chunk)

    async def publish(self, chunk: TranscriptionChunk) -> None:
        """Queue the chunk's finals for the writer (announced once saved), each once its speaker is known;
        the partial goes out now, led by the finals that wait, so that no word leaves the screen meanwhile."""
        for segment in chunk.finals:
            # a final without word times still counts, as one word over its whole time
            words = segment.words or [Word(" " + segment.text.strip(), segment.start_time, segment.end_time)]
            self.waiting += [(word, segment.confidence, time.monotonic()) for word in words]
        released = self.release_finals()
        self.save_soon()
        if chunk.partial is not None:
            self.partial = chunk.partial
        if chunk.partial is not None or (released and self.speakers is not None):  # the released left the partial
            await self.send_partial()

    def release_finals(self, wait: bool = True) -> int:
        """The waiting finals whose speakers are known become rows, a cue never holding two speakers. A final
        waits SPEAKER_WAIT_SECS at most (none without `wait`): a diarizer that cannot keep up costs the
        words their sure speakers (they take the newest guess), not their time on screen."""
        covered = self.speakers.covered_secs if self.speakers is not None and wait else float("inf")
        waited_since = time.monotonic() - SPEAKER_WAIT_SECS
        ready = 0
        while ready < len(self.waiting) and (
            self.waiting[ready][0].end <= covered or self.waiting[ready][2] <= waited_since
        ):
            ready += 1
        if not ready:
            return 0
        taken, self.waiting = self.waiting[:ready], self.waiting[ready:]
        words = [word for word, _, _ in taken]
        if self.speakers is not None and self.speakers.error is None:
            speakers = self.speakers.timeline.speakers(words, self.last_speaker, provisional=True)
        else:
            speakers = [None] * len(words)
        confidence = {id(word): known for word, known, _ in taken}
        for run, speaker in diarization.runs(words, speakers):
            for piece in self.cues.add(run, speaker):
                self.unsaved.append(
                    TranscriptSegment(
                        session_id=self.id,
                        index=self.index,
                        cue=piece.cue,
                        text=piece.text,
                        start_time=piece.start,
                        end_time=piece.end,
                        speaker=piece.speaker,
                        confidence=confidence[id(piece.words[0])],
                        words=[[w.text, round(w.start, 3), round(w.end, 3)] for w in piece.words],
                    )
                )
                self.index += 1
        self.last_speaker = speakers[-1]
        return ready

    async def send_partial(self) -> None:
        """The partial as the page shows it: the finals still waiting for their speakers, then the stream's partial."""
        words = [word for word, _, _ in self.waiting]
        partial = self.partial
        text = "".join(w.text for w in words) + (partial.text if partial is not None else "")
        if words:
            start, end = words[0].start, max(words[-1].end, partial.end_time if partial and partial.text else 0.0)
        elif partial is not None:
            start, end = partial.start_time, partial.end_time
        else:
            start = end = 0.0  # no partial from the stream yet: the finals just shown leave it empty
        speaker = partial.speaker if partial is not None else None
        if self.speakers is not None and self.speakers.error is None and text.strip():
            speaker = self.speakers.timeline.speaker(start, end, provisional=True)
            speaker = speaker if speaker is not None else self.last_speaker
        await events.publish_async(self.id, events.subtitle(text, start, end, False, speaker))

    def save_soon(self) -> None:
        """Start the writer if finals wait and it is not already writing."""
        if self.unsaved and (self.writer is None or self.writer.done()):
            self.writer = asyncio.create_task(self._write(), name=f"writer-{self.id}")

    async def _write(self) -> None:
        rows = list(self.unsaved)
        try:
            await database_sync_to_async(TranscriptSegment.objects.bulk_create)(rows)  # all or none
        except DB_UNAVAILABLE as exc:
            log.warning("session %s: %d finals wait for the database: %s", self.id, len(rows), exc)
            return  # kept; the next tick tries again
        del self.unsaved[: len(rows)]
        for row in rows:
            await events.publish_async(self.id, row.to_event())

    async def saved(self) -> None:
        """Wait until every final so far is in the database (retrying while it is unavailable)."""
        deadline = time.monotonic() + DB_RETRY_SECS
        while True:
            if self.writer is not None:
                await self.writer
            if not self.unsaved:
                return
            if time.monotonic() > deadline:
                raise OperationalError(f"{len(self.unsaved)} finals could not be saved: the database is unavailable")
            await asyncio.sleep(1.0)
            self.save_soon()

    async def send_status(self) -> None:
        try:
            clients = await database_sync_to_async(lambda: self.session.client_count)()
        except DB_UNAVAILABLE:
            return  # a status is only news; the next one comes in a second
        status = events.status(self.session, self.session.position(), clients, self.lag_secs)
        status["skipped_secs"] = round(self.skipped_secs, 1)
        status["feed_lag_secs"] = round(self.feed_lag_secs, 2)
        await events.publish_async(self.id, status)


class SessionWorker:
    """Takes sessions from the "transcription" channel and runs them, up to its capacity."""

    def __init__(self, worker_id: str | None = None, capacity: int | None = None) -> None:
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.capacity = capacity or settings.WORKER_CAPACITY or settings.MAX_CONCURRENT_SESSIONS
        self.runs: dict[int, SessionRun] = {}
        # reads and pushes are short (passes run in the model's scheduler); a final pass waits in one
        self.executor = ThreadPoolExecutor(
            max_workers=FEED_THREADS + FINAL_PASSES_AT_ONCE, thread_name_prefix=f"session-{self.id}"
        )
        self._room = asyncio.Event()
        self.final_passes: dict[int, asyncio.Task[None]] = {}  # by session id
        self._final_slots = asyncio.Semaphore(FINAL_PASSES_AT_ONCE)

    async def in_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    async def serve(self) -> None:
        """Run until cancelled: take sessions, keep heartbeats and clocks, sweep orphans.

        Both loops are supervised: an error (the database locked, Redis gone) is logged and
        the loop starts again after a backoff, while the sessions already running go on.
        """
        log.info("worker %s: taking sessions (capacity %d)", self.id, self.capacity)
        loops = [
            Supervised("worker-intake", self._take_sessions).start(),
            Supervised("worker-heartbeat", self._keep_up, settings.WORKER_HEARTBEAT_SECS).start(),
        ]
        try:
            await asyncio.Event().wait()
        finally:
            for supervised in loops:
                await supervised.stop()

    async def _take_sessions(self, supervised: Supervised) -> None:
        layer = get_channel_layer()
        assert layer is not None
        while True:
            while len(self.runs) >= self.capacity:  # full: leave the message to another worker
                self._room.clear()
                await self._room.wait()
            message = await layer.receive(events.WORKER_CHANNEL)
            supervised.beat()
            if message.get("type") != "session.start":
                continue
            try:
                await self.start(int(message["session_id"]))
            except Exception:
                # not taken: put it back for the next try, here or in another worker
                # (a session nobody takes ends after SESSION_START_TIMEOUT_SECS, with a sentence)
                await layer.send(events.WORKER_CHANNEL, message)
                raise

    async def start(self, session_id: int) -> None:
        session = await database_sync_to_async(
            TranscriptionSession.objects.select_related("media").filter(pk=session_id).first
        )()
        if session is None or not await database_sync_to_async(session.claim)(self.id):
            return  # gone, or another worker took it
        run = SessionRun(self, session)
        self.runs[session_id] = run
        run.task = asyncio.create_task(self._own(run), name=f"session-{session_id}")
        log.info("worker %s: session %s (%s, %s)", self.id, session_id, session.model_id, session.media_filename)

    async def _own(self, run: SessionRun) -> None:
        try:
            await run.run()
        finally:
            self.runs.pop(run.id, None)
            self._room.set()

    def start_final_pass(self, session: TranscriptionSession, speakers: Timeline | None = None) -> None:
        """A completed session's final transcript, made in a task of its own that this worker owns; its words
        take their speakers from the live diarization of the same recording."""
        task = asyncio.create_task(self._final_pass(session, speakers), name=f"final-{session.pk}")
        self.final_passes[session.pk] = task
        task.add_done_callback(lambda _: self.final_passes.pop(session.pk, None))

    async def _final_pass(self, session: TranscriptionSession, speakers: Timeline | None = None) -> None:
        """Transcribe the whole recording offline and save it; a failure is logged and announced, nothing more."""
        try:
            async with self._final_slots:
                words = await self._transcribe_whole(session)
            builder = CueBuilder()
            found = speakers.speakers(words) if speakers is not None else [None] * len(words)
            pieces = [piece for run, speaker in diarization.runs(words, found) for piece in builder.add(run, speaker)]
            await retrying(save_final_transcript, session.pk, pieces)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, ModelError):
                log.warning("session %s: no final transcript: %s", session.pk, exc)
            else:
                log.exception("session %s: the final transcript failed", session.pk)
            reason = str(exc) if isinstance(exc, ModelError) else f"The offline pass failed: {exc}"
            await events.publish_async(session.pk, events.transcript(TranscriptVersion.FINAL, error=reason))
            return
        log.info("session %s: final transcript saved (%d pieces)", session.pk, len(pieces))
        await events.publish_async(session.pk, events.transcript(TranscriptVersion.FINAL))

    async def _transcribe_whole(self, session: TranscriptionSession) -> list[Word]:
        path = await database_sync_to_async(lambda: session.media.path if session.media else None)()
        if path is None or not path.exists():
            raise ModelError("The recording of this session has been deleted.")
        audio, _ = await self.in_thread(soundfile.read, str(path), dtype="float32", always_2d=False)
        words: list[Word] = await self.in_thread(
            registry.transcribe_offline,
            session.model_id,
            audio,
            language=session.language or None,
            target_language=session.target_language or None,
            priority=BACKGROUND,
        )
        return words

    async def _keep_up(self, supervised: Supervised) -> None:
        last_beat = 0.0
        while True:
            await asyncio.sleep(REFRESH_SECS)
            if self.runs:
                await self._refresh_clocks()
            if time.monotonic() - last_beat >= settings.WORKER_HEARTBEAT_SECS:
                last_beat = time.monotonic()
                levels = {run.id: run.level for run in self.runs.values()}
                await database_sync_to_async(self._beat)(levels)
                supervised.beat()

    async def _refresh_clocks(self) -> None:
        fields = [
            "id",
            "state",
            "started_at",
            "paused_at",
            "paused_secs",
            "ended_position_secs",
            "duration_secs",
            "input_ended_at",
        ]
        rows = await database_sync_to_async(
            lambda: list(TranscriptionSession.objects.filter(pk__in=list(self.runs)).values(*fields))
        )()
        for row in rows:
            run = self.runs.get(row.pop("id"))
            if run is not None:
                run.follow(row)

    def _beat(self, levels: dict[int, int]) -> None:
        """Heartbeats for the sessions this worker still runs (one whose task has died stops
        beating, and the sweeper ends it), with their degradation levels; then the sweep."""
        WorkerLoad.record(self.id, self.capacity, len(levels), registry.loads())
        now = timezone.now()
        for level in set(levels.values()):
            ids = [pk for pk, at in levels.items() if at == level]
            TranscriptionSession.objects.filter(pk__in=ids, worker_id=self.id, state__in=LIVE).update(
                heartbeat_at=now, degraded=level
            )
        TranscriptionSession.sweep_orphans()

    async def shutdown(self, reason: str) -> None:
        """Stop every session this worker runs, saying why, and end their tasks."""
        for run in list(self.runs.values()):
            if run.task is not None:
                run.task.cancel()
            with contextlib.suppress(TransitionError):
                await database_sync_to_async(run.session.stop)(reason)
        for run in list(self.runs.values()):
            if run.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await run.task
        # a final pass cut short writes nothing (its rows go in one transaction at the end)
        passes = list(self.final_passes.values())
        for task in passes:
            task.cancel()
        for task in passes:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):  # a database that is gone keeps a row that soon stops counting
            await database_sync_to_async(WorkerLoad.gone)(self.id)


class InputWatch:
    """Ends a live session whose input has ended or gone quiet (in the worker that runs it).

    A stream that ended is played out; one that failed, or sent nothing for LIVE_STALL_SECS,
    ends in error. A microphone that sent nothing for LIVE_RECONNECT_SECS (its operator's
    connection dropped and did not come back) is played out with what it had. Time paused
    does not count.
    """

    def __init__(self, session: TranscriptionSession) -> None:
        self.session = session
        self.frames = -1
        self.grew_at = time.monotonic()

    async def check(self, frames: int, feed: StreamFeed | None) -> bool:
        """True when it changed the session (ended its input, or failed it)."""
        session = self.session
        if not session.live_input_open:
            return False
        now = time.monotonic()
        if frames != self.frames or session.state != State.RUNNING:
            self.frames, self.grew_at = frames, now
        received = frames / SAMPLE_RATE
        if feed is not None and feed.ended:
            if feed.error is None:
                return await self._end(received, "The stream ended.")
            return await self._fail(feed.error)
        quiet = now - self.grew_at
        if session.source == Source.STREAM and quiet > settings.LIVE_STALL_SECS:
            return await self._fail(f"The stream stalled: no audio for {settings.LIVE_STALL_SECS:.0f} s.")
        if session.source == Source.MICROPHONE and quiet > settings.LIVE_RECONNECT_SECS:
            return await self._end(
                received,
                f"The operator's microphone was disconnected for {settings.LIVE_RECONNECT_SECS:.0f} s; "
                "the session ended with what it had.",
            )
        return False

    async def _end(self, received: float, reason: str) -> bool:
        with contextlib.suppress(TransitionError):
            await retrying(self.session.end_input, received, reason)
        return True

    async def _fail(self, error: str) -> bool:
        with contextlib.suppress(TransitionError):
            await retrying(self.session.fail, error)
        return True


def save_final_transcript(session_id: int, pieces: list[CuePiece]) -> None:
    """The final version's rows, all or none: a half-written final transcript is never visible."""
    rows = [
        TranscriptSegment(
            session_id=session_id,
            version=TranscriptVersion.FINAL,
            index=i,
            cue=piece.cue,
            text=piece.text,
            start_time=piece.start,
            end_time=piece.end,
            speaker=piece.speaker,
            confidence=mean_probability(piece),
            words=[[w.text, round(w.start, 3), round(w.end, 3)] for w in piece.words],
        )
        for i, piece in enumerate(pieces)
    ]
    with transaction.atomic():
        TranscriptSegment.objects.bulk_create(rows)


def mean_probability(piece: CuePiece) -> float | None:
    known = [w.probability for w in piece.words if w.probability is not None]
    return sum(known) / len(known) if known else None
