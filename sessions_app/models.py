from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, models, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from media_app.models import MediaFile
from sessions_app import events
from transcriber_site.access import new_share_key

log = logging.getLogger(__name__)


class State(models.TextChoices):
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    ERROR = "error"


LIVE = (State.STARTING, State.RUNNING, State.PAUSED)
ENDED = (State.COMPLETED, State.STOPPED, State.ERROR)

# starting -> running <-> paused -> completed | stopped | error, and nothing else
TRANSITIONS: dict[str, set[str]] = {
    State.STARTING: {State.RUNNING, State.STOPPED, State.ERROR},
    State.RUNNING: {State.PAUSED, State.COMPLETED, State.STOPPED, State.ERROR},
    State.PAUSED: {State.RUNNING, State.STOPPED, State.ERROR},
    State.COMPLETED: set(),
    State.STOPPED: set(),
    State.ERROR: set(),
}


class TransitionError(Exception):
    """The session is not in a state that allows the change; the message says so."""


class Source(models.TextChoices):
    RECORDING = "recording", "a recording of the library, played as if live"
    MICROPHONE = "microphone", "an operator's microphone, sent from the page over WebRTC"
    STREAM = "stream", "a network stream (Icecast, HLS, RTSP, SRT, ...) opened by the worker"


# A live source's clock runs this far behind the audio received, so that every reader (the
# worker, each web process's relay) finds the audio of the clock's position already written.
LIVE_LEAD_SECS = 0.15


class SessionQuerySet(models.QuerySet["TranscriptionSession"]):
    def listed(self, operator: bool = False) -> SessionQuerySet:
        """What to_dict needs, in the one query of the rows whatever their number: the live
        listeners counted and the final transcript's presence annotated (not a query per row)."""
        final = TranscriptSegment.objects.filter(session=OuterRef("pk"), version=TranscriptVersion.FINAL)
        listed = self.annotate(
            listed_client_count=Count("listeners", filter=Q(listeners__seen_at__gte=Listener.live_since())),
            listed_has_final=Exists(final),
        )
        listed = listed.order_by("-created_at", "-id")  # Meta.ordering, which a GROUP BY query drops
        return listed.select_related("created_by", "stopped_by") if operator else listed


# What only operators see of a session (to_dict(operator=True)); never in what listeners get.
OPERATOR_FIELDS = ("share_url", "source_url", "created_by", "stopped_by")


class TranscriptionSession(models.Model):
    """One recording played as if live through one model.

    The session clock lives on the row (start time and pauses), so the worker that
    transcribes and every web process that plays the audio agree on the position
    without talking to each other.
    """

    model_id = models.CharField(max_length=64)
    media = models.ForeignKey(MediaFile, null=True, on_delete=models.SET_NULL, related_name="sessions")
    media_filename = models.CharField(max_length=255)  # kept when the recording is deleted later
    duration_secs = models.FloatField()
    language = models.CharField(max_length=16, blank=True)
    target_language = models.CharField(max_length=16, blank=True)
    preset = models.CharField(max_length=32, default="balanced")
    state = models.CharField(max_length=16, choices=State.choices, default=State.STARTING, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)  # when the clock started
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_secs = models.FloatField(default=0.0)  # pauses that have ended, in total
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_position_secs = models.FloatField(null=True, blank=True)
    stop_reason = models.TextField(blank=True)
    error = models.TextField(blank=True)
    worker_id = models.CharField(max_length=128, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    degraded = models.PositiveSmallIntegerField(default=0)  # 0 normal; see sessions_app.runner
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.RECORDING)
    source_url = models.TextField(blank=True)  # a stream's; shown to operators only (it may hold credentials)
    # A live source's input ended (the stream ended, the operator pressed End, the microphone
    # did not come back): duration_secs is then what was received, and the clock plays it out.
    input_ended_at = models.DateTimeField(null=True, blank=True)
    # The channel of the socket whose microphone feeds the session (one at a time, in any web process).
    publisher = models.CharField(max_length=255, blank=True)
    # What a listener needs besides the id where LISTEN_ACCESS=link (transcriber_site.access)
    share_key = models.CharField(max_length=32, default=new_share_key, editable=False)
    diarize = models.BooleanField(default=False)  # its words get speakers (models_app.diarization)
    # What an operator calls the speakers: {"0": "Diane"}; the others are "Speaker N" (speaker_label)
    speaker_names = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"session {self.pk} ({self.model_id}, {self.media_filename})"

    # --- the clock ---------------------------------------------------------------------------

    def position(self, now: float | None = None) -> float:
        """Seconds of the recording played so far (pauses hold it still)."""
        if self.ended_position_secs is not None:
            return self.ended_position_secs
        if self.started_at is None:
            return 0.0
        now = time.time() if now is None else now
        until = self.paused_at.timestamp() if self.paused_at is not None else now
        played = until - self.started_at.timestamp() - self.paused_secs
        return min(max(played, 0.0), self.duration_secs)

    def clock(self) -> dict[str, Any]:
        """What a process needs to follow the clock (sent with every change). Plain values only: it is
        pickled to the audio process, which cannot unpickle a `State` (no Django there)."""
        return {
            "state": str(self.state),
            "started_at": self.started_at.timestamp() if self.started_at else None,
            "paused_at": self.paused_at.timestamp() if self.paused_at else None,
            "paused_secs": self.paused_secs,
            "duration_secs": self.duration_secs,
            "ended_position_secs": self.ended_position_secs,
            "live_input": self.live_input_open,
        }

    @property
    def is_live(self) -> bool:
        return self.state in LIVE

    @property
    def client_count(self) -> int:
        counted: int | None = getattr(self, "listed_client_count", None)  # SessionQuerySet.listed's
        return counted if counted is not None else Listener.live().filter(session=self).count()

    # --- the state machine ----------------------------------------------------------------------

    def _transition(self, new: str, **fields: Any) -> TranscriptionSession:
        """Move to `new` if the row (not this copy) is in a state that allows it; else TransitionError.

        Compare-and-set in one UPDATE, so two processes can never both make a change. The events
        are made from the row as saved (returned), not from this copy: a worker's loop may set
        this copy's clock fields from an older read at any moment (SessionRun.follow).
        """
        allowed_from = [s for s, targets in TRANSITIONS.items() if new in targets]
        with transaction.atomic():
            current = TranscriptionSession.objects.select_for_update().get(pk=self.pk)
            if current.state not in allowed_from:
                raise TransitionError(
                    f"Session {self.pk} is {current.state}; it cannot become {new} "
                    f"(only from {' or '.join(allowed_from) or 'nowhere'})."
                )
            old = current.state
            for name, value in fields.items():
                setattr(current, name, value)
            current.state = new
            current.save(update_fields=["state", *fields])
        self.refresh_from_db()
        log.info("session %s: %s -> %s", self.pk, old, new)
        self._announce(events.clock(current))
        self._announce_listed()
        return current

    def _announce(self, event: dict[str, Any]) -> None:
        """Publish once the change is committed: inside a caller's transaction, a listener told
        now could read the old row, or hear of a change that is then rolled back."""
        session_id = self.pk
        transaction.on_commit(lambda: events.publish(session_id, event))

    def _announce_listed(self) -> None:
        """Once committed, the session as the list shows it goes to the open Browse pages."""
        session_id = self.pk
        transaction.on_commit(lambda: TranscriptionSession.push_listed(session_id))

    @classmethod
    def push_listed(cls, session_id: int) -> None:
        """Send the session's card to the Browse pages' groups: one read, however many pages.

        Only news: a failure is logged and the pages catch up at their next fetch of the list.
        """
        try:
            session = cls.objects.listed(operator=True).filter(pk=session_id).first()
        except DatabaseError as exc:
            log.warning("session %s: could not read it for the Browse pages: %r", session_id, exc)
            return
        if session is not None:
            events.publish_listed(events.listed(session.to_dict()), events.listed(session.to_dict(operator=True)))

    def claim(self, worker_id: str) -> bool:
        """A worker takes the session (still starting: it loads the model next); False if taken."""
        now = timezone.now()
        taken = TranscriptionSession.objects.filter(pk=self.pk, state=State.STARTING, worker_id="").update(
            worker_id=worker_id, heartbeat_at=now
        )
        self.refresh_from_db()
        return taken == 1

    def start_clock(self) -> None:
        """starting -> running: the model is ready, the recording starts playing.

        A live source's clock starts LIVE_LEAD_SECS later: its position trails what arrives.
        """
        lead = timedelta(seconds=LIVE_LEAD_SECS if self.is_live_source else 0.0)
        self._transition(State.RUNNING, started_at=timezone.now() + lead, heartbeat_at=timezone.now())

    @property
    def is_live_source(self) -> bool:
        return self.source != Source.RECORDING

    @property
    def live_input_open(self) -> bool:
        """A live source still sends (or may send again): the session has no known end yet."""
        return self.is_live_source and self.input_ended_at is None and self.state not in ENDED

    def end_input(self, received_secs: float, reason: str = "") -> None:
        """A live source's input is over: the session plays out the `received_secs` it has, then completes.

        TransitionError for a recording, or an input that has already ended.
        """
        if not self.is_live_source:
            raise TransitionError(f"Session {self.pk} plays a recording; it has no live input to end (stop it).")
        with transaction.atomic():
            current = TranscriptionSession.objects.select_for_update().get(pk=self.pk)
            if current.input_ended_at is not None or current.state in ENDED:
                raise TransitionError(f"The input of session {self.pk} has already ended.")
            current.input_ended_at = timezone.now()
            current.duration_secs = max(received_secs, 0.0)
            current.stop_reason = reason or current.stop_reason
            current.save(update_fields=["input_ended_at", "duration_secs", "stop_reason"])
        self.refresh_from_db()
        log.info("session %s: input ended after %.1f s%s", self.pk, received_secs, f" ({reason})" if reason else "")
        self._announce(events.clock(self))
        self._announce_listed()

    def pause(self) -> None:
        if self.state != State.RUNNING:
            raise TransitionError(f"Session {self.pk} is {self.state}; only a running session can be paused.")
        self._transition(State.PAUSED, paused_at=timezone.now())

    def resume(self) -> None:
        if self.state != State.PAUSED:
            raise TransitionError(f"Session {self.pk} is {self.state}; only a paused session can be resumed.")
        paused_at = self.paused_at or timezone.now()
        self._transition(
            State.RUNNING,
            paused_at=None,
            paused_secs=self.paused_secs + (timezone.now() - paused_at).total_seconds(),
        )

    def stop(self, reason: str, by: Any = None) -> None:
        """Stop the session; `by` is the operator who stopped it, if one did."""
        if self.state in ENDED:
            raise TransitionError(f"Session {self.pk} has already ended ({self.state}).")
        self._end(State.STOPPED, stop_reason=reason, stopped_by=by)

    def complete(self) -> None:
        self._end(State.COMPLETED)

    def fail(self, error: str) -> None:
        self._end(State.ERROR, error=error)

    def _end(self, state: str, last_alive: datetime | None = None, **fields: Any) -> None:
        """End the session where its clock is now, or where it was at `last_alive` (the last
        heartbeat of a worker that died: the time since then was never played)."""
        self.refresh_from_db()
        at = last_alive.timestamp() if last_alive is not None else None
        ended = self._transition(state, ended_at=timezone.now(), ended_position_secs=self.position(at), **fields)
        self._announce(events.ended(ended))

    # --- the API's view of a session --------------------------------------------------------------

    def to_dict(self, operator: bool = False) -> dict[str, Any]:
        """The session as the API shows it; `operator` adds OPERATOR_FIELDS (its share link, its
        stream's URL, which may hold a password, and who started and stopped it).

        Rows from SessionQuerySet.listed() need no query here.
        """
        from models_app.registry import registry

        spec = registry.specs.get(self.model_id)
        data = {
            "id": self.pk,
            "model_id": self.model_id,
            "model_name": spec.display_name if spec else self.model_id,
            "media_id": self.media_id,
            "media_filename": self.media_filename,
            "state": self.state,
            "client_count": self.client_count,
            # a live source's length is what has played until its input ends; duration_secs is its cap till then
            "duration_secs": round(self.position() if self.live_input_open else self.duration_secs, 3),
            "source": self.source,
            "live_input": self.live_input_open,
            "progress_secs": round(self.position(), 3),
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "language": self.language or None,
            "target_language": self.target_language or None,
            "preset": self.preset,
            "stop_reason": self.stop_reason or None,
            "error": self.error or None,
            "degraded": self.degraded,
            "diarize": self.diarize,
            "speaker_names": self.speaker_names,
            "worker": self.worker_id or None,
            "clock": self.clock(),
            "transcripts": self.transcript_versions(),
        }
        if operator:
            data["share_url"] = f"/?session={self.pk}&key={self.share_key}"
            data["source_url"] = self.source_url or None
            data["created_by"] = self.created_by.get_username() if self.created_by else None
            data["stopped_by"] = self.stopped_by.get_username() if self.stopped_by else None
        return data

    def transcript_versions(self) -> list[str]:
        """The versions that can be downloaded: always the live one, the final one once it is written."""
        versions = [TranscriptVersion.LIVE.value]
        has_final: bool | None = getattr(self, "listed_has_final", None)  # SessionQuerySet.listed's
        if has_final is None:
            has_final = self.segments.filter(version=TranscriptVersion.FINAL).exists()
        if has_final:
            versions.append(TranscriptVersion.FINAL.value)
        return versions

    # --- sessions whose worker is gone ---------------------------------------------------------------

    @classmethod
    def sweep_orphans(cls, now: datetime | None = None) -> list[int]:
        """Turn live sessions whose worker stopped beating into errors; the ids it ended."""
        now = now or timezone.now()
        stale_before = now - timedelta(seconds=settings.WORKER_HEARTBEAT_TIMEOUT_SECS)
        unclaimed_before = now - timedelta(seconds=settings.SESSION_START_TIMEOUT_SECS)
        ended = []
        claimed = cls.objects.filter(state__in=LIVE).exclude(worker_id="")
        for session in claimed.filter(heartbeat_at__lt=stale_before):
            heartbeat = session.heartbeat_at.strftime("%H:%M:%S") if session.heartbeat_at else "?"
            ended += session._end_quietly(
                State.ERROR,
                last_alive=session.heartbeat_at,
                error=f"The worker running this session ({session.worker_id}) stopped responding; "
                f"its last heartbeat was at {heartbeat} UTC.",
            )
        for session in cls.objects.filter(state=State.STARTING, worker_id="", created_at__lt=unclaimed_before):
            ended += session._end_quietly(
                State.ERROR,
                error=f"No worker took the session within {settings.SESSION_START_TIMEOUT_SECS:.0f} s: "
                "is `python manage.py transcription_worker` running (REDIS_URL is set)?",
            )
        return ended

    @classmethod
    def stop_left_running(cls, reason: str, only_stale: bool) -> list[int]:
        """At start-up: sessions a previous process left live are stopped (all of them, or only
        those whose worker has stopped beating when other workers may still be alive)."""
        live = cls.objects.filter(state__in=LIVE)
        if only_stale:
            fresh_after = timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_TIMEOUT_SECS)
            live = live.exclude(worker_id="").exclude(heartbeat_at__gte=fresh_after)
        ended = []
        for session in live:
            ended += session._end_quietly(State.STOPPED, last_alive=session.heartbeat_at, stop_reason=reason)
        return ended

    def _end_quietly(self, state: str, last_alive: datetime | None = None, **fields: Any) -> list[int]:
        """End the session unless another process got there first."""
        try:
            self._end(state, last_alive, **fields)
        except TransitionError:
            return []
        return [self.pk]


class TranscriptVersion(models.TextChoices):
    LIVE = "live", "what listeners saw"
    FINAL = "final", "one offline pass after the session"


class TranscriptSegment(models.Model):
    """One piece of a session's transcript, in order; pieces are never changed.

    The `live` version holds the finals as the stream gave them; the `final` version is
    written once, whole, by the offline pass after the session completes. Consecutive
    pieces with the same `cue` form one subtitle cue (`models_app.transcript`).
    """

    session = models.ForeignKey(TranscriptionSession, on_delete=models.CASCADE, related_name="segments")
    version = models.CharField(max_length=8, choices=TranscriptVersion.choices, default=TranscriptVersion.LIVE)
    index = models.PositiveIntegerField()
    cue = models.PositiveIntegerField(default=0)
    text = models.TextField()
    start_time = models.FloatField()
    end_time = models.FloatField()
    speaker = models.IntegerField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    words = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["session", "version", "index"]
        constraints = [
            models.UniqueConstraint(fields=["session", "version", "index"], name="one_segment_per_version_index")
        ]

    def __str__(self) -> str:
        return f"{self.start_time:.1f}-{self.end_time:.1f} {self.text}"

    def to_event(self) -> dict[str, Any]:
        return events.subtitle(
            self.text,
            self.start_time,
            self.end_time,
            True,
            self.speaker,
            index=self.index,
            confidence=self.confidence,
            cue=self.cue,
        )


class Listener(models.Model):
    """A WebSocket connected to a session, in whichever web process holds it.

    Each web process refreshes `seen_at` on its listeners; rows of a process that died
    without saying goodbye stop counting once they are older than LISTENER_STALE_SECS.
    """

    session = models.ForeignKey(TranscriptionSession, on_delete=models.CASCADE, related_name="listeners")
    channel_name = models.CharField(max_length=255, unique=True)
    server_id = models.CharField(max_length=128)
    connected_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"listener of session {self.session_id} on {self.server_id}"

    @staticmethod
    def live_since() -> datetime:
        """Rows seen since then count; older ones are a dead process's."""
        return timezone.now() - timedelta(seconds=LISTENER_STALE_SECS)

    @classmethod
    def live(cls) -> models.QuerySet[Listener]:
        return cls.objects.filter(seen_at__gte=cls.live_since())

    @classmethod
    def count_of(cls, session_ids: Iterable[int]) -> dict[int, int]:
        """Live listeners of each session, in one query (0 for one that has none)."""
        ids = list(session_ids)
        counted = cls.live().filter(session_id__in=ids).values_list("session_id").annotate(n=Count("pk"))
        return {session_id: 0 for session_id in ids} | dict(counted)

    @classmethod
    def keep_alive(cls, server_id: str) -> None:
        """This process's listeners are still here; rows no process refreshes any more go
        (and the Browse pages hear the counts of their sessions)."""
        now = timezone.now()
        cls.objects.filter(server_id=server_id).update(seen_at=now)
        stale = cls.objects.filter(seen_at__lt=now - timedelta(seconds=LISTENER_STALE_SECS))
        gone = set(stale.values_list("session_id", flat=True))
        if gone:
            stale.delete()
            for session_id, count in cls.count_of(gone).items():
                events.publish_listed(events.listener_count(session_id, count))


LISTENER_HEARTBEAT_SECS = 10.0
LISTENER_STALE_SECS = 3 * LISTENER_HEARTBEAT_SECS


@receiver(post_save, sender=TranscriptionSession)
def announce_new_session(
    sender: type[TranscriptionSession], instance: TranscriptionSession, created: bool, **kwargs: Any
) -> None:
    """A new session's card goes to the open Browse pages (its changes go from _transition)."""
    if created:
        instance._announce_listed()


from sessions_app.capacity import WorkerLoad  # noqa: E402, F401  (a model of this app, in its own module)
