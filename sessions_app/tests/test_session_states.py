"""The state machine: starting -> running <-> paused -> completed | stopped | error, nothing else."""

from __future__ import annotations

import pytest

from sessions_app.models import TRANSITIONS, State, TransitionError
from sessions_app.tests.conftest import new_session

pytestmark = pytest.mark.django_db


def test_the_allowed_transitions_are_exactly_the_documented_ones():
    assert {
        "starting": {"running", "stopped", "error"},
        "running": {"paused", "completed", "stopped", "error"},
        "paused": {"running", "stopped", "error"},
        "completed": set(),
        "stopped": set(),
        "error": set(),
    } == TRANSITIONS


def test_a_session_runs_pauses_resumes_and_completes(make_media):
    session = new_session(make_media(2.0))
    assert session.claim("w1")

    session.start_clock()
    assert session.state == State.RUNNING and session.started_at is not None
    session.pause()
    assert session.state == State.PAUSED and session.paused_at is not None
    session.resume()
    assert session.state == State.RUNNING and session.paused_at is None
    session.complete()
    assert session.state == State.COMPLETED and session.ended_at is not None


@pytest.mark.parametrize(
    ("setup", "action", "message"),
    [
        ([], "pause", "Session {id} is starting; only a running session can be paused."),
        ([], "resume", "Session {id} is starting; only a paused session can be resumed."),
        (["start_clock"], "resume", "Session {id} is running; only a paused session can be resumed."),
        (["start_clock", "complete"], "pause", "Session {id} is completed; only a running session can be paused."),
        (["start_clock", "complete"], "stop", "Session {id} has already ended (completed)."),
        ([], "complete", "Session {id} is starting; it cannot become completed (only from running)."),
        (
            ["start_clock", "pause"],
            "complete",
            "Session {id} is paused; it cannot become completed (only from running).",
        ),
    ],
)
def test_other_transitions_are_refused_with_a_sentence(make_media, setup, action, message):
    session = new_session(make_media(2.0))
    session.claim("w1")
    for step in setup:
        getattr(session, step)()

    with pytest.raises(TransitionError) as error:
        getattr(session, action)(*(["because"] if action == "stop" else []))

    assert str(error.value) == message.format(id=session.pk)


def test_a_change_is_judged_on_the_row_not_on_a_stale_copy(make_media):
    session = new_session(make_media(2.0))
    session.claim("w1")
    session.start_clock()
    stale = type(session).objects.get(pk=session.pk)
    session.stop("by the API")

    with pytest.raises(TransitionError):
        stale.complete()  # another process's copy still says running
    stale.refresh_from_db()
    assert stale.state == State.STOPPED


def test_only_one_worker_can_claim_a_session(make_media):
    session = new_session(make_media(2.0))
    other = type(session).objects.get(pk=session.pk)

    assert session.claim("w1") is True
    assert other.claim("w2") is False
    other.refresh_from_db()
    assert other.worker_id == "w1"


def test_the_end_is_announced_from_the_row_saved_not_from_a_copy_another_loop_changed(
    make_media, monkeypatch, django_capture_on_commit_callbacks
):
    """A worker's clock loop sets its copy's fields from a read made before the end
    (SessionRun.follow): the end event must still say how the session ended."""
    from sessions_app import events

    session = new_session(make_media(2.0))
    session.claim("w1")
    session.start_clock()
    published: list[dict] = []
    monkeypatch.setattr(events, "publish", lambda session_id, event: published.append(event))
    refresh = type(session).refresh_from_db

    def refresh_then_stale_follow(self, *args, **kwargs):
        refresh(self, *args, **kwargs)
        self.state, self.ended_position_secs = State.RUNNING, None  # the loop's older read lands

    monkeypatch.setattr(type(session), "refresh_from_db", refresh_then_stale_follow)
    with django_capture_on_commit_callbacks(execute=True):
        session.complete()

    ends = [e for e in published if e["type"] == "session.end"]
    clocks = [e for e in published if e["type"] == "session.clock"]
    assert [e["state"] for e in ends] == [State.COMPLETED]
    assert clocks[-1]["state"] == State.COMPLETED and clocks[-1]["ended_position_secs"] is not None
    # plain strings: the clock is pickled to the audio process, which has no Django to unpickle a State
    assert {type(e["state"]) for e in published if "state" in e} == {str}
