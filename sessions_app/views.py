from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import psutil
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from media_app.audio import ACCEPTED_EXTENSIONS, SAMPLE_RATE
from media_app.live import new_live_media
from media_app.models import MediaFile
from media_app.wavfile import GrowingWav
from models_app import diarization
from models_app.engines.sortformer import SPEAKERS
from models_app.policy import DEFAULT_PRESET, PRESETS
from models_app.registry import ModelError, preset_config, registry
from models_app.transcript import CONTENT_TYPES, FORMATS, render
from sessions_app import capacity, events
from sessions_app.models import (
    LIVE,
    Listener,
    Source,
    State,
    TranscriptionSession,
    TranscriptVersion,
    TransitionError,
)
from sessions_app.sources import StreamError, probe_stream
from sessions_app.turn import ice_servers
from sessions_app.webrtc import SERVER_ID, hub
from transcriber_site.access import listen_refusal, may_list, may_listen, may_operate
from transcriber_site.lib.http import ApiError, api, json_body, shown
from transcriber_site.lib.looplag import probe
from transcriber_site.lib.supervise import statuses

ParsedModel = TypeVar("ParsedModel", bound=BaseModel)
SPEAKER_NAME_MAX = 40


@api("GET")
def config(request: HttpRequest) -> dict[str, Any]:
    """What a browser needs before it joins: ICE servers, where the WebSocket is, limits."""
    servers = ice_servers("listener")  # fresh TURN credentials for each page
    if listen_refusal(request.user):  # this visitor may not listen: no relay is theirs to use
        servers = [server for server in servers if "credential" not in server]
    return {
        "iceServers": servers,
        "wsHost": settings.WS_HOST or None,
        "maxUploadMb": settings.MAX_UPLOAD_SIZE_MB,
        "acceptedExtensions": sorted(ACCEPTED_EXTENSIONS),
        "presets": list(PRESETS),
        "defaultPreset": DEFAULT_PRESET,
        "operator": may_operate(request.user),  # signed in (cookie or token) with the operate permission
        "username": request.user.get_username() or None,
        "listenAccess": settings.LISTEN_ACCESS,
        "signInUrl": reverse("sign-in"),
    }


async def health(request: HttpRequest) -> HttpResponse:
    """This process's counts (peers, audio sources, listeners, live sessions) for anyone; for
    operators also its tasks, memory, event-loop lag and supervised loops (leak checks).

    Async, so that it sees the event loop's tasks (the peers' and audio sources' live there).
    """
    if request.method != "GET":
        return JsonResponse({"error": f"{request.method} is not allowed here; use GET."}, status=405)
    listeners = await sync_to_async(Listener.objects.filter(server_id=SERVER_ID).count)()
    live = await sync_to_async(TranscriptionSession.objects.filter(state__in=LIVE).count)()
    counts = {"server": SERVER_ID, **hub.stats(), "listeners": listeners, "live_sessions": live}
    user = await request.auser()
    if not await sync_to_async(may_operate)(user):
        return JsonResponse(counts)
    return JsonResponse(
        {
            **counts,
            "tasks": len(asyncio.all_tasks()),
            "rss_mb": round(psutil.Process().memory_info().rss / 2**20),
            "loop_lag": probe.stats(),
            "supervised": statuses(),
            "workers": await sync_to_async(capacity.loads)(),
        }
    )


class NewSession(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), str_strip_whitespace=True)

    # Strict: `true` is not media 1, and "7" is not a number. Bounded: a value that may be
    # repeated in an error message is never longer than a real one.
    model_id: str = Field(max_length=64)
    source: Literal["recording", "microphone", "stream"] = "recording"
    media_id: int | None = Field(default=None, strict=True)  # a recording's
    url: str | None = Field(default=None, max_length=2000)  # a stream's
    language: str | None = Field(default=None, max_length=16)
    target_language: str | None = Field(default=None, max_length=16)
    preset: str = Field(default=DEFAULT_PRESET, max_length=32)
    diarize: bool | None = Field(default=None, strict=True)  # default: when the speaker model is installed


@api("GET", "POST", operator=("POST",))
def session_list(request: HttpRequest) -> HttpResponse | list[dict[str, Any]] | dict[str, Any]:
    if request.method == "POST":
        return create_session(request)
    if refusal := listen_refusal(request.user):
        raise ApiError(401, refusal)
    if not may_list(request.user):
        return []  # LISTEN_ACCESS=link: a visitor finds a session only through its share link
    operator = may_operate(request.user)
    sessions = TranscriptionSession.objects.listed(operator)  # one query, whatever the number of sessions
    if request.GET.get("state") == "live":
        sessions = sessions.filter(state__in=LIVE)
    return [session.to_dict(operator) for session in sessions[:200]]


def as_json(request: HttpRequest, session: TranscriptionSession) -> dict[str, Any]:
    """A session as the API shows it; operators also get its share link and who started and stopped it."""
    return session.to_dict(operator=may_operate(request.user))


def create_session(request: HttpRequest) -> HttpResponse:
    new = parse(NewSession, json_body(request))
    try:
        spec = registry.spec(new.model_id)
        if reason := spec.missing():
            raise ApiError(400, f"The model '{new.model_id}' is not available: {reason}")
        language, target = spec.check_languages(new.language, new.target_language)
        preset_config(new.preset)
    except ModelError as exc:
        raise ApiError(400, str(exc)) from None
    diarize = new.diarize
    if diarize is not False:
        reason = diarization.unavailable_reason()
        if diarize and reason:
            raise ApiError(400, f"Field 'diarize': the session cannot tell speakers apart. {reason}")
        diarize = reason is None
    if reason := capacity.refusal(new.model_id):
        raise ApiError(429, reason)
    media = recording_of(new) if new.source == Source.RECORDING else None
    live_name = live_recording_name(new) if media is None else ""  # a stream is probed first
    with transaction.atomic():
        _serialise_creation()
        if TranscriptionSession.objects.filter(state__in=LIVE).count() >= settings.MAX_CONCURRENT_SESSIONS:
            raise ApiError(
                429,
                f"The server already runs {settings.MAX_CONCURRENT_SESSIONS} sessions, its limit "
                f"(MAX_CONCURRENT_SESSIONS); stop one or wait for one to end.",
            )
        made = None
        if media is None:
            media = made = new_live_media(live_name)
        try:
            session = TranscriptionSession.objects.create(
                model_id=new.model_id,
                source=new.source,
                source_url=new.url or "",
                media=media,
                media_filename=media.filename,
                # a live source has no length yet: the clock may run until the session's time limit
                duration_secs=media.duration_secs if made is None else settings.SESSION_TIMEOUT_SECS,
                language=language,
                target_language=target or "",
                preset=new.preset,
                diarize=diarize,
                created_by=request.user if request.user.is_authenticated else None,
            )
        except BaseException:
            if made is not None:  # its row goes with the transaction; its file goes here
                made.path.unlink(missing_ok=True)
            raise
    try:
        async_to_sync(events.dispatch_start)(session.pk)
    except Exception as exc:  # the channel layer (Redis) is down: no worker can hear of it
        session.fail(f"No worker could be asked to run the session: the channel layer is unavailable ({exc}).")
        raise ApiError(503, "The server cannot reach its workers (its channel layer is down); try again.") from None
    return JsonResponse(as_json(request, session), status=201)


def recording_of(new: NewSession) -> MediaFile:
    if new.media_id is None:
        raise ApiError(400, "Field 'media_id': a recording session needs the id of a recording.")
    if new.url is not None:
        raise ApiError(400, "Field 'url': only a stream session has a URL.")
    media = MediaFile.objects.filter(pk=new.media_id).first()
    if media is None:
        raise ApiError(400, f"There is no media file with id {new.media_id}.")
    if media.missing:
        raise ApiError(409, media.missing_message)
    return media


def live_recording_name(new: NewSession) -> str:
    """The name of the library recording a live session writes; a stream's URL must give audio first."""
    if new.media_id is not None:
        raise ApiError(400, f"Field 'media_id': a {new.source} session records into a new recording of its own.")
    if new.source == Source.STREAM:
        if not new.url:
            raise ApiError(400, "Field 'url': a stream session needs the stream's URL.")
        try:
            probe_stream(new.url)  # bounded by LIVE_PROBE_SECS
        except StreamError as exc:
            raise ApiError(400, str(exc)) from None
        name = f"Stream {urlsplit(new.url).hostname} {timezone.now():%Y-%m-%d %H%M}"
    else:
        if new.url is not None:
            raise ApiError(400, "Field 'url': only a stream session has a URL.")
        name = f"Microphone {timezone.now():%Y-%m-%d %H%M}"
    return name


def _serialise_creation() -> None:
    """Count-then-insert must not interleave between requests (SQLite's IMMEDIATE transactions
    already serialise writers; PostgreSQL takes a transaction-scoped advisory lock)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(5150)")


@api("GET", "PATCH", "DELETE", operator=("PATCH", "DELETE"))
def session_detail(request: HttpRequest, session_id: int) -> dict[str, Any]:
    if request.method == "PATCH":
        return rename_speakers(request, session_id)
    if request.method == "DELETE":
        session = get_session(session_id)
        with transitions():
            session.stop("Stopped by an operator.", by=request.user if request.user.is_authenticated else None)
        return as_json(request, session)
    return as_json(request, visible_session(request, session_id))


class SessionChanges(BaseModel):
    """What an operator may change on a session: the speakers' names (null or "" gives back "Speaker N")."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    speaker_names: dict[Literal["0", "1", "2", "3"], str | None] | None = Field(default=None, max_length=SPEAKERS)

    @field_validator("speaker_names")
    @classmethod
    def printable(cls, names: dict[str, str | None] | None) -> dict[str, str | None] | None:
        for name in (names or {}).values():
            if name is not None and (len(name) > SPEAKER_NAME_MAX or not name.isprintable()):
                raise ValueError(f"a speaker's name is printable text of at most {SPEAKER_NAME_MAX} characters")
        return names


def rename_speakers(request: HttpRequest, session_id: int) -> dict[str, Any]:
    """Merge the names given into the session's; every page and every export shows them."""
    with transaction.atomic():
        session = get_session(session_id, locked=True)  # a missing session is a 404 whatever the body
        changes = parse(SessionChanges, json_body(request))
        if changes.speaker_names is None:
            raise ApiError(
                400, """Field 'speaker_names': send the names to change, e.g. {"speaker_names": {"0": "Di"}}."""
            )
        names = dict(session.speaker_names)
        for key, name in changes.speaker_names.items():
            if name:
                names[key] = name
            else:
                names.pop(key, None)
        session.speaker_names = dict(sorted(names.items()))
        session.save(update_fields=["speaker_names"])
    events.publish(session.pk, events.speakers(session.speaker_names))
    return as_json(request, session)


@api("POST", operator=("POST",))
def session_pause(request: HttpRequest, session_id: int) -> dict[str, Any]:
    session = get_session(session_id)
    with transitions():
        session.pause()
    return as_json(request, session)


@api("POST", operator=("POST",))
def session_resume(request: HttpRequest, session_id: int) -> dict[str, Any]:
    session = get_session(session_id)
    with transitions():
        session.resume()
    return as_json(request, session)


@api("POST", operator=("POST",))
def session_end(request: HttpRequest, session_id: int) -> dict[str, Any]:
    """End a live session's input: it plays out what it received, completes, and gets its final transcript."""
    session = get_session(session_id)
    with transitions():
        session.end_input(received_secs(session), reason="Ended by an operator.")
    return as_json(request, session)


def received_secs(session: TranscriptionSession) -> float:
    """How much of a live source's audio has reached its recording."""
    if session.media is None or not session.media.path.is_file():
        return session.position()
    reader = GrowingWav(session.media.path)
    try:
        return reader.frames / SAMPLE_RATE
    finally:
        reader.close()


@api("GET")
def session_transcript(request: HttpRequest, session_id: int) -> HttpResponse:
    session = visible_session(request, session_id)
    fmt = request.GET.get("format", "txt")
    if fmt not in FORMATS:
        raise ApiError(400, f"Unknown transcript format '{shown(fmt)}'; use one of {', '.join(FORMATS)}.")
    version = transcript_version(session, request.GET.get("version"))
    segments = list(session.segments.filter(version=version))
    response = HttpResponse(render(segments, fmt, session.speaker_names), content_type=CONTENT_TYPES[fmt])
    stem = session.media_filename.rsplit(".", 1)[0] or "transcript"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)[:60]
    response["Content-Disposition"] = f'attachment; filename="session-{session.pk}-{safe}-{version}.{fmt}"'
    return response


def transcript_version(session: TranscriptionSession, asked: str | None) -> str:
    """The version asked for, if it exists; by default the final one once there is one, else the live one."""
    versions = session.transcript_versions()
    if asked is None:
        return versions[-1]
    if asked not in TranscriptVersion.values:
        known = ", ".join(TranscriptVersion.values)
        raise ApiError(400, f"Unknown transcript version '{shown(asked)}'; use one of {known}.")
    if asked not in versions:
        if session.state in (State.STOPPED, State.ERROR):
            how = "was stopped" if session.state == State.STOPPED else "ended in an error"
            raise ApiError(
                404,
                f"Session {session.pk} has no final transcript: it {how}, and only a session played to its end "
                "gets one.",
            )
        raise ApiError(
            404,
            f"The final transcript of session {session.pk} is not ready yet: the offline pass over the "
            "whole recording runs after the session completes; try again in a moment.",
        )
    return asked


def get_session(session_id: int, locked: bool = False) -> TranscriptionSession:
    """The session, or a 404; `locked`: its row locked until the transaction ends (select_for_update)."""
    sessions = TranscriptionSession.objects.select_for_update() if locked else TranscriptionSession.objects
    session = sessions.filter(pk=session_id).first()
    if session is None:
        raise ApiError(404, f"There is no session with id {session_id}.")
    return session


def visible_session(request: HttpRequest, session_id: int) -> TranscriptionSession:
    """The session, if this visitor may see it (LISTEN_ACCESS, the share key in `?key=`).

    One the visitor may not see is a 404 like a missing one: ids cannot be probed.
    """
    if refusal := listen_refusal(request.user):
        raise ApiError(401, refusal)
    session = get_session(session_id)
    if not may_listen(request.user, session.share_key, request.GET.get("key")):
        raise ApiError(404, f"There is no session with id {session_id}.")
    return session


@contextlib.contextmanager
def transitions() -> Iterator[None]:
    """Turn a refused state change into a 409 with its sentence."""
    try:
        yield
    except TransitionError as exc:
        raise ApiError(409, str(exc)) from None


def parse(model: type[ParsedModel], data: dict[str, Any]) -> ParsedModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        message = first["msg"].removeprefix("Value error, ")  # a validator's own sentence, without pydantic's label
        raise ApiError(400, f"Field '{field}': {message}.") from None
