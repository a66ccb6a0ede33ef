"""The admin lists sessions with their progress and listeners, and stops, pauses and resumes them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from sessions_app.models import State
from sessions_app.tests.conftest import new_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = User.objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(admin)  # sign-in itself is tested in test_login_throttle
    return client


@pytest.fixture
def running(make_media):
    session = new_session(make_media(3.0, name="lecture.flac"))
    session.claim("w")
    session.start_clock()
    return session


def act(admin_client, action: str, *sessions):
    return admin_client.post(
        "/admin/sessions_app/transcriptionsession/",
        {"action": action, "_selected_action": [s.pk for s in sessions]},
        follow=True,
    )


def test_the_list_shows_state_model_media_progress_and_listeners(admin_client, running):
    page = admin_client.get("/admin/sessions_app/transcriptionsession/").content.decode()

    assert "lecture.flac" in page and "whisper" in page and "running" in page
    assert "/ 3 s" in page


def test_pause_resume_and_stop_actions(admin_client, running):
    act(admin_client, "pause_sessions", running)
    running.refresh_from_db()
    assert running.state == State.PAUSED

    act(admin_client, "resume_sessions", running)
    running.refresh_from_db()
    assert running.state == State.RUNNING

    act(admin_client, "stop_sessions", running)
    running.refresh_from_db()
    assert running.state == State.STOPPED
    assert running.stop_reason == "Stopped by an operator in the admin."


def test_an_action_a_state_forbids_is_reported_not_forced(admin_client, running):
    running.stop("done")

    page = act(admin_client, "pause_sessions", running).content.decode()

    assert f"Session {running.pk} is stopped; only a running session can be paused." in page
