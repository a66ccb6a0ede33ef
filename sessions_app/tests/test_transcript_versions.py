"""The transcript export gives the final version once it exists, the live one on request, and
says why when the version asked for is not there."""

from __future__ import annotations

import pytest

from sessions_app.models import TranscriptSegment, TranscriptVersion
from sessions_app.tests.conftest import new_session

pytestmark = pytest.mark.django_db


def add_rows(session, version, texts):
    for i, text in enumerate(texts):
        TranscriptSegment.objects.create(
            session=session, version=version, index=i, cue=i, text=text, start_time=i, end_time=i + 0.9
        )


@pytest.fixture
def session(make_media):
    session = new_session(make_media(2.0, name="demo.flac"))
    session.claim("w")
    session.start_clock()
    add_rows(session, TranscriptVersion.LIVE, ["Welcome to my", "meeting."])
    return session


@pytest.fixture
def completed(session):
    session.complete()
    add_rows(session, TranscriptVersion.FINAL, ["Welcome to the meeting."])
    return session


def transcript(operator_client, session, query=""):
    return operator_client.get(f"/api/sessions/{session.pk}/transcript?format=srt{query}")


def test_once_the_final_version_exists_it_is_the_default(operator_client, completed):
    response = transcript(operator_client, completed)

    assert response.status_code == 200
    assert response.content.decode() == "1\n00:00:00,000 --> 00:00:01,000\nWelcome to the meeting.\n"
    assert response["Content-Disposition"] == f'attachment; filename="session-{completed.pk}-demo-final.srt"'
    assert completed.to_dict()["transcripts"] == ["live", "final"]


def test_the_live_version_can_still_be_asked_for(operator_client, completed):
    response = transcript(operator_client, completed, "&version=live")

    assert response.status_code == 200
    assert "Welcome to my" in response.content.decode()
    assert "the meeting" not in response.content.decode()
    assert response["Content-Disposition"] == f'attachment; filename="session-{completed.pk}-demo-live.srt"'


def test_without_a_final_version_the_default_is_the_live_one(operator_client, session):
    response = transcript(operator_client, session)

    assert response.status_code == 200
    assert "Welcome to my" in response.content.decode()
    assert response["Content-Disposition"].endswith('-demo-live.srt"')
    assert session.to_dict()["transcripts"] == ["live"]


def test_an_unknown_version_is_400(operator_client, completed):
    response = transcript(operator_client, completed, "&version=bogus")

    assert response.status_code == 400
    assert response.json() == {"error": "Unknown transcript version 'bogus'; use one of live, final."}


def test_the_final_version_before_the_offline_pass_wrote_it_is_404(operator_client, session):
    session.complete()

    response = transcript(operator_client, session, "&version=final")

    assert response.status_code == 404
    assert response.json()["error"].startswith(f"The final transcript of session {session.pk} is not ready yet: ")


def test_a_stopped_session_has_no_final_version(operator_client, session):
    session.stop("Stopped by an operator.")

    response = transcript(operator_client, session, "&version=final")

    assert response.status_code == 404
    assert response.json() == {
        "error": f"Session {session.pk} has no final transcript: it was stopped, and only a session played "
        "to its end gets one."
    }
