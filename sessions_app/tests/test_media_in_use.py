"""A recording a live session plays cannot be deleted; once the session ended it can."""

from __future__ import annotations

import pytest

from media_app.models import MediaFile
from sessions_app.tests.conftest import new_session

pytestmark = pytest.mark.django_db


def test_deleting_media_of_a_live_session_is_409(operator_client, make_media):
    media = make_media(2.0, name="talk.flac")
    session = new_session(media)

    response = operator_client.delete(f"/api/media/{media.id}")

    assert response.status_code == 409
    assert response.json() == {"error": f"'talk.flac' is playing in live session {session.id}; stop it first."}
    assert media.path.exists()
    assert MediaFile.objects.filter(pk=media.pk).exists()


def test_after_the_session_ended_the_media_goes_and_the_session_keeps_its_name(operator_client, make_media):
    media = make_media(2.0, name="talk.flac")
    session = new_session(media)
    session.stop("done")

    response = operator_client.delete(f"/api/media/{media.id}")

    assert response.status_code == 204
    session.refresh_from_db()
    assert session.media is None
    assert session.to_dict()["media_filename"] == "talk.flac"
