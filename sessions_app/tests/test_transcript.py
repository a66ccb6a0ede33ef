"""The transcript of a session, in four formats, while it runs and after it ends."""

from __future__ import annotations

import json

import pytest

from sessions_app.models import TranscriptSegment
from sessions_app.tests.conftest import new_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(make_media):
    session = new_session(make_media(2.0, name="Board meeting.flac"))
    session.claim("w")
    session.start_clock()
    # two finals of one cue, stored as the worker stores them
    finals = [
        [[" Welcome", 0.0, 0.4], [" to", 0.4, 0.8]],
        [[" the", 0.8, 1.0], [" meeting", 1.0, 1.5], [".", 1.5, 1.6]],
    ]
    for i, words in enumerate(finals):
        text = "".join(w[0] for w in words)
        TranscriptSegment.objects.create(
            session=session, index=i, cue=0, text=text, start_time=words[0][1], end_time=words[-1][2], words=words
        )
    return session


@pytest.mark.parametrize(
    ("fmt", "content_type", "body"),
    [
        ("txt", "text/plain; charset=utf-8", "Welcome to the meeting.\n"),
        ("srt", "application/x-subrip; charset=utf-8", "1\n00:00:00,000 --> 00:00:01,600\nWelcome to the meeting.\n"),
        ("vtt", "text/vtt; charset=utf-8", "WEBVTT\n\n00:00:00.000 --> 00:00:01.600\nWelcome to the meeting.\n"),
    ],
)
def test_each_format_while_the_session_runs(operator_client, session, fmt, content_type, body):
    response = operator_client.get(f"/api/sessions/{session.id}/transcript?format={fmt}")

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response.content.decode() == body
    assert response["Content-Disposition"] == f'attachment; filename="session-{session.id}-Board_meeting-live.{fmt}"'


def test_json_and_after_the_session_ended(operator_client, session):
    session.stop("done")

    data = json.loads(operator_client.get(f"/api/sessions/{session.id}/transcript?format=json").content)

    assert [(d["start"], d["end"], d["text"]) for d in data] == [(0.0, 1.6, "Welcome to the meeting.")]  # one cue
    assert [w["text"] for w in data[0]["words"]] == [" Welcome", " to", " the", " meeting", "."]


def test_the_default_format_is_text(operator_client, session):
    assert operator_client.get(f"/api/sessions/{session.id}/transcript").content.decode() == "Welcome to the meeting.\n"


def test_an_unknown_format_is_400(operator_client, session):
    response = operator_client.get(f"/api/sessions/{session.id}/transcript?format=docx")

    assert response.status_code == 400
    assert response.json() == {"error": "Unknown transcript format 'docx'; use one of txt, json, srt, vtt."}
