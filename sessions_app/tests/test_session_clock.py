"""The session clock: played time from the start and the pauses stored on the row."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sessions_app.tests.conftest import new_session

pytestmark = pytest.mark.django_db


def test_the_position_follows_wall_time_minus_pauses(make_media):
    session = new_session(make_media(4.0))
    assert session.position() == 0.0
    session.claim("w")
    session.start_clock()
    start = session.started_at.timestamp()

    assert session.position(start + 1.5) == pytest.approx(1.5)
    session.paused_at = session.started_at + timedelta(seconds=2)
    assert session.position(start + 3.5) == pytest.approx(2.0)  # held while paused
    session.paused_at = None
    session.paused_secs = 1.0
    assert session.position(start + 3.5) == pytest.approx(2.5)


def test_the_position_never_passes_the_recording(make_media):
    session = new_session(make_media(4.0))
    session.claim("w")
    session.start_clock()

    assert session.position(session.started_at.timestamp() + 100) == pytest.approx(session.duration_secs)


def test_an_ended_session_keeps_the_position_it_ended_at(make_media):
    session = new_session(make_media(4.0))
    session.claim("w")
    session.start_clock()
    session.stop("test")

    assert session.position(session.started_at.timestamp() + 100) == session.ended_position_secs < 1.0


def test_resume_adds_the_pause_to_the_paused_total(make_media):
    session = new_session(make_media(4.0))
    session.claim("w")
    session.start_clock()
    session.pause()
    type(session).objects.filter(pk=session.pk).update(paused_at=session.paused_at - timedelta(seconds=3))
    session.refresh_from_db()

    session.resume()

    assert session.paused_secs == pytest.approx(3.0, abs=0.1)
