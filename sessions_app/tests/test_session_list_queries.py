"""GET /api/sessions answers in the same number of queries for 1 session as for 50, and says the same."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sessions_app.models import (
    LISTENER_STALE_SECS,
    Listener,
    State,
    TranscriptionSession,
    TranscriptSegment,
    TranscriptVersion,
)
from sessions_app.tests.conftest import new_session

pytestmark = pytest.mark.django_db


def sessions_like_the_list_shows(media, count: int, operator) -> list[TranscriptionSession]:
    """`count` sessions, each with what to_dict reads from other rows: listeners (one stale), a final transcript."""
    made = []
    for i in range(count):
        session = new_session(media, state=State.COMPLETED if i % 2 else State.RUNNING, created_by=operator)
        for n in range(i % 3):
            Listener.objects.create(session=session, channel_name=f"c-{session.pk}-{n}", server_id="here")
        Listener.objects.create(
            session=session,
            channel_name=f"gone-{session.pk}",
            server_id="dead",
            seen_at=timezone.now() - timedelta(seconds=LISTENER_STALE_SECS + 1),
        )
        if i % 2:
            TranscriptSegment.objects.create(
                session=session, version=TranscriptVersion.FINAL, index=0, text="hi", start_time=0, end_time=1
            )
        made.append(session)
    return made


def queries_of_the_list(client: Client) -> tuple[int, list[dict]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/api/sessions")
    assert response.status_code == 200
    return len(captured), response.json()


@pytest.mark.parametrize("who", ["visitor", "operator"])
def test_the_list_takes_as_many_queries_for_50_sessions_as_for_1(who, client, operator_client, operator, make_media):
    asker = operator_client if who == "operator" else client
    media = make_media(1.0)
    sessions_like_the_list_shows(media, 1, operator)
    one, _ = queries_of_the_list(asker)
    sessions_like_the_list_shows(media, 49, operator)

    fifty, listed = queries_of_the_list(asker)

    assert len(listed) == 50
    assert fifty == one
    assert one <= (5 if who == "operator" else 1)  # the operator's: its sign-in's session, user and permissions


def test_the_counted_list_says_what_each_session_says_alone(operator_client, operator, make_media):
    made = sessions_like_the_list_shows(make_media(1.0), 6, operator)

    listed = {s["id"]: s for s in operator_client.get("/api/sessions").json()}

    for session in made:
        alone = TranscriptionSession.objects.get(pk=session.pk).to_dict(operator=True)  # its own queries
        shown = listed[session.pk]
        assert shown["client_count"] == alone["client_count"] == Listener.live().filter(session=session).count()
        assert shown["transcripts"] == alone["transcripts"]
        assert shown["created_by"] == "operator" and shown["share_url"] == alone["share_url"]
        assert {k: v for k, v in shown.items() if k not in ("progress_secs", "duration_secs", "clock")} == {
            k: v for k, v in alone.items() if k not in ("progress_secs", "duration_secs", "clock")
        }
    assert [s["client_count"] for s in sorted(listed.values(), key=lambda s: s["id"])] == [0, 1, 2, 0, 1, 2]
