"""What goes to a session's channel-layer group, and how it is sent.

Every process that cares about session N (its worker, the web processes of its
listeners) is in the group "session-N". Messages carry a "type" that Channels maps to
a handler (`session.subtitle` -> `session_subtitle`); the WebSocket consumer forwards
them to browsers under the protocol's names (subtitle, status, end, transcript, speakers, error).

The open Browse pages are in "sessions" (visitors who may list sessions) or
"sessions-operators" (operators: the same cards with the operator's fields). They hear a
session's card when it is created or changes state, and its listener count when that
changes (coalesced per process, sessions_app.consumers.ListenerCounts): one event per
change, whatever the number of pages, and no page fetches the list again for it. An
event carries its frame ready to send ("text"), so the JSON is made once, not per page.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

if TYPE_CHECKING:
    from sessions_app.models import TranscriptionSession

log = logging.getLogger(__name__)

WORKER_CHANNEL = "transcription"
LISTERS_GROUP = "sessions"  # Browse pages of visitors who may list sessions (transcriber_site.access.may_list)
OPERATORS_GROUP = "sessions-operators"  # Browse pages of operators


def group(session_id: int) -> str:
    return f"session-{session_id}"


def subtitle(
    text: str,
    start: float,
    end: float,
    is_final: bool,
    speaker: int | None = None,
    index: int | None = None,
    confidence: float | None = None,
    cue: int | None = None,
) -> dict[str, Any]:
    """A final (with its row's `index` and its `cue`: finals of one cue show as one) or the partial."""
    event: dict[str, Any] = {
        "type": "session.subtitle",
        "text": text,
        "start": round(start, 3),
        "end": round(end, 3),
        "is_final": is_final,
        "speaker": speaker,
    }
    if index is not None:
        event["index"] = index
    if cue is not None:
        event["cue"] = cue
    if confidence is not None:
        event["confidence"] = round(confidence, 3)
    return event


def status(
    session: TranscriptionSession, progress_secs: float, client_count: int, lag_secs: float = 0.0
) -> dict[str, Any]:
    return {
        "type": "session.status",
        "state": session.state,
        "progress_secs": round(progress_secs, 2),
        "duration_secs": round(session.duration_secs, 2),
        "client_count": client_count,
        "degraded": session.degraded,
        "lag_secs": round(lag_secs, 2),
    }


def clock(session: TranscriptionSession) -> dict[str, Any]:
    """The clock changed (start, pause, resume, end): audio tracks and workers follow it."""
    return {"type": "session.clock", "session_id": session.pk, **session.clock()}


def ended(session: TranscriptionSession) -> dict[str, Any]:
    reason = session.error or session.stop_reason or "The recording has been played to its end."
    return {"type": "session.end", "state": str(session.state), "reason": reason}


def transcript(version: str, error: str | None = None) -> dict[str, Any]:
    """A version of the transcript can be downloaded now; with `error`, it will not be made."""
    event: dict[str, Any] = {"type": "session.transcript", "version": version, "ready": error is None}
    if error is not None:
        event["error"] = error
    return event


def speakers(names: dict[str, str]) -> dict[str, Any]:
    """An operator renamed the session's speakers: every page shows the new names."""
    return {"type": "session.speakers", "names": names}


def listed(session: dict[str, Any]) -> dict[str, Any]:
    """A session's card for the Browse pages (TranscriptionSession.to_dict, with or without the operator's fields)."""
    return {"type": "sessions.push", "text": json.dumps({"type": "session", "session": session})}


def listener_count(session_id: int, client_count: int) -> dict[str, Any]:
    """A session's live listeners changed: the one number of its card."""
    frame = {"type": "count", "id": session_id, "client_count": client_count}
    return {"type": "sessions.push", "text": json.dumps(frame)}


async def publish_listed_async(for_listers: dict[str, Any], for_operators: dict[str, Any] | None = None) -> None:
    """Send to the Browse pages: `for_listers` to visitors, `for_operators` (or the same) to operators.
    Only news: pages that miss it catch up at their next fetch of the list."""
    for name, event in ((LISTERS_GROUP, for_listers), (OPERATORS_GROUP, for_operators or for_listers)):
        await _send_to_group(name, event, f"could not tell the Browse pages ({name})")


def publish_listed(for_listers: dict[str, Any], for_operators: dict[str, Any] | None = None) -> None:
    async_to_sync(publish_listed_async)(for_listers, for_operators)


async def publish_async(session_id: int, event: dict[str, Any]) -> None:
    """Send to the session's group. A channel layer that is down (Redis gone) loses the event,
    never the session: what it announces is saved, and a listener resyncs from the API."""
    await _send_to_group(group(session_id), event, f"session {session_id}: could not publish {event.get('type')}")


async def _send_to_group(name: str, event: dict[str, Any], failed: str) -> None:
    """group_send that logs `failed` and goes on when the channel layer is down."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(name, event)
    except Exception as exc:
        log.warning("%s: %r", failed, exc)


def publish(session_id: int, event: dict[str, Any]) -> None:
    """Send from synchronous code (views, model methods run in threads)."""
    async_to_sync(publish_async)(session_id, event)


async def dispatch_start(session_id: int) -> None:
    """Ask a worker (any worker) to run the session."""
    layer = get_channel_layer()
    assert layer is not None
    await layer.send(WORKER_CHANNEL, {"type": "session.start", "session_id": session_id})
