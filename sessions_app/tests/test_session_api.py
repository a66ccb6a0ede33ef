"""The sessions REST API: create, list, read, stop, pause, resume, and every refusal."""

from __future__ import annotations

import json

import pytest

from sessions_app.models import State, TranscriptionSession
from sessions_app.tests.conftest import new_session

pytestmark = pytest.mark.django_db


def post(operator_client, url: str, body: object):
    return operator_client.post(url, json.dumps(body), content_type="application/json")


def test_create_returns_the_session_in_starting(operator_client, make_media):
    media = make_media(3.0)

    response = post(operator_client, "/api/sessions", {"model_id": "whisper", "media_id": media.id})

    assert response.status_code == 201
    body = response.json()
    assert body["state"] == "starting"
    assert body["model_id"] == "whisper" and body["model_name"] == "Whisper"
    assert body["media_id"] == media.id and body["media_filename"] == media.filename
    assert body["duration_secs"] == pytest.approx(3.0, abs=0.05)
    assert body["progress_secs"] == 0.0 and body["client_count"] == 0
    assert body["language"] == "en" and body["preset"] == "balanced"
    assert set(body) >= {"id", "created_at", "state", "client_count", "progress_secs", "duration_secs"}


def test_list_and_read(operator_client, make_media):
    media = make_media(2.0)
    a = post(operator_client, "/api/sessions", {"model_id": "whisper", "media_id": media.id}).json()
    b = post(
        operator_client, "/api/sessions", {"model_id": "whisper", "media_id": media.id, "preset": "accurate"}
    ).json()

    assert [s["id"] for s in operator_client.get("/api/sessions").json()] == [b["id"], a["id"]]
    assert operator_client.get(f"/api/sessions/{a['id']}").json()["id"] == a["id"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"model_id": "nope", "media_id": "{media}"},
            400,
            "There is no model 'nope'. Known models: parakeet-tdt, canary-1b, whisper.",
        ),
        ({"model_id": "whisper", "media_id": 9999}, 400, "There is no media file with id 9999."),
        (
            {"model_id": "whisper", "media_id": "{media}", "language": "fr"},
            400,
            "Whisper does not transcribe 'fr'; it knows: en.",
        ),
        (
            {"model_id": "whisper", "media_id": "{media}", "preset": "warp"},
            400,
            "There is no preset 'warp'. Presets: low_latency, balanced, accurate.",
        ),
        ({"model_id": "whisper"}, 400, "Field 'media_id': a recording session needs the id of a recording."),
        (
            {"model_id": "whisper", "media_id": "x"},
            400,
            "Field 'media_id': Input should be a valid integer.",
        ),
        ({"model_id": "whisper", "media_id": True}, 400, "Field 'media_id': Input should be a valid integer."),
        ({"model_id": "whisper", "media_id": "7"}, 400, "Field 'media_id': Input should be a valid integer."),
        (
            {"model_id": "w" * 1_000_000, "media_id": "{media}"},
            400,
            "Field 'model_id': String should have at most 64 characters.",
        ),
        (
            {"model_id": "whisper", "media_id": "{media}", "language": "e" * 100_000},
            400,
            "Field 'language': String should have at most 16 characters.",
        ),
        (
            {"model_id": "whisper", "media_id": "{media}", "colour": "red"},
            400,
            "Field 'colour': Extra inputs are not permitted.",
        ),
    ],
)
def test_bad_requests_say_which_field_or_thing_is_wrong(operator_client, make_media, body, status, message):
    media = make_media(1.0)
    body = {k: (media.id if v == "{media}" else v) for k, v in body.items()}

    response = post(operator_client, "/api/sessions", body)

    assert response.status_code == status
    assert response.json() == {"error": message}
    assert not TranscriptionSession.objects.exists()


def test_an_unavailable_model_is_refused_with_what_is_missing(operator_client, make_media, settings, tmp_path):
    settings.TDT_MODEL_PATH = tmp_path / "no-tdt"

    response = post(operator_client, "/api/sessions", {"model_id": "parakeet-tdt", "media_id": make_media(1.0).id})

    assert response.status_code == 400
    assert response.json()["error"].startswith(
        "The model 'parakeet-tdt' is not available: Parakeet TDT is not downloaded"
    )


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]"])
def test_a_body_that_is_not_a_json_object_is_refused(operator_client, raw):
    response = operator_client.post("/api/sessions", raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] in (
        "The request body is not valid JSON.",
        "The request body must be a JSON object.",
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_body_that_is_not_sent_as_json_is_a_415(operator_client, make_media, content_type):
    """What another site's page can POST without a preflight is refused, even when its text is JSON."""
    media = make_media(1.0)
    raw = json.dumps({"model_id": "whisper", "media_id": media.id})

    response = operator_client.post("/api/sessions", raw, content_type=content_type)

    assert response.status_code == 415
    assert response.json() == {"error": "Send the request body as JSON, with Content-Type: application/json."}
    assert not TranscriptionSession.objects.exists()


@pytest.mark.parametrize("depth", [33, 100_000])
def test_deeply_nested_json_is_a_400_sentence_not_a_500(operator_client, depth):
    raw = b"[" * depth + b"]" * depth

    response = operator_client.post("/api/sessions", raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"error": "JSON nested deeper than 32 levels is not accepted."}


def test_brackets_inside_strings_do_not_count_as_nesting(operator_client, make_media):
    media = make_media(1.0)
    raw = json.dumps({"model_id": "[" * 40, "media_id": media.id}).encode()

    response = operator_client.post("/api/sessions", raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"].startswith("There is no model '[[[[")


def test_unknown_transcript_formats_are_not_echoed_at_length(operator_client, make_media):
    session = new_session(make_media(1.0))

    response = operator_client.get(f"/api/sessions/{session.pk}/transcript", {"format": "x" * 100_000})

    assert response.status_code == 400
    assert len(response.json()["error"]) < 200


def test_a_locked_database_is_a_503_sentence(operator_client, make_media, monkeypatch):
    from django.db import OperationalError

    media = make_media(1.0)

    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(TranscriptionSession.objects, "create", locked)
    response = post(operator_client, "/api/sessions", {"model_id": "whisper", "media_id": media.id})

    assert response.status_code == 503
    assert response.json() == {"error": "The database is busy or unreachable; try again in a moment."}


def test_the_concurrent_session_limit_is_a_429_naming_it(operator_client, make_media, settings):
    settings.MAX_CONCURRENT_SESSIONS = 2
    media = make_media(1.0)
    for _ in range(2):
        assert post(operator_client, "/api/sessions", {"model_id": "whisper", "media_id": media.id}).status_code == 201

    response = post(operator_client, "/api/sessions", {"model_id": "whisper", "media_id": media.id})

    assert response.status_code == 429
    assert response.json() == {
        "error": "The server already runs 2 sessions, its limit (MAX_CONCURRENT_SESSIONS); stop one or wait for one to end."
    }
    TranscriptionSession.objects.update(state=State.STOPPED)
    assert post(operator_client, "/api/sessions", {"model_id": "whisper", "media_id": media.id}).status_code == 201


def test_stop_pause_and_resume(operator_client, make_media):
    session = new_session(make_media(4.0))
    session.claim("w")
    session.start_clock()

    paused = post(operator_client, f"/api/sessions/{session.id}/pause", {})
    resumed = post(operator_client, f"/api/sessions/{session.id}/resume", {})
    stopped = operator_client.delete(f"/api/sessions/{session.id}")

    assert (paused.status_code, paused.json()["state"]) == (200, "paused")
    assert (resumed.status_code, resumed.json()["state"]) == (200, "running")
    assert (stopped.status_code, stopped.json()["state"]) == (200, "stopped")
    assert stopped.json()["stop_reason"] == "Stopped by an operator."


def test_changes_a_state_does_not_allow_are_409(operator_client, make_media):
    session = new_session(make_media(2.0))

    assert post(operator_client, f"/api/sessions/{session.id}/resume", {}).json() == {
        "error": f"Session {session.id} is starting; only a paused session can be resumed."
    }
    assert post(operator_client, f"/api/sessions/{session.id}/pause", {}).status_code == 409
    operator_client.delete(f"/api/sessions/{session.id}")
    again = operator_client.delete(f"/api/sessions/{session.id}")
    assert again.status_code == 409
    assert again.json() == {"error": f"Session {session.id} has already ended (stopped)."}


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", ""), ("delete", ""), ("post", "/pause"), ("post", "/resume"), ("get", "/transcript")],
)
def test_an_unknown_session_is_404(operator_client, method, path):
    response = getattr(operator_client, method)(f"/api/sessions/404{path}")

    assert response.status_code == 404
    assert response.json() == {"error": "There is no session with id 404."}


def test_a_recording_whose_file_is_missing_cannot_start_a_session(operator_client, make_media):
    media = make_media(1.0)
    media.path.unlink()

    response = post(operator_client, "/api/sessions", {"model_id": "whisper", "media_id": media.id})

    assert response.status_code == 409
    assert response.json() == {
        "error": "The file of 'demo-part.flac' is missing from the media directory; it can be played again once it is back."
    }
    assert not TranscriptionSession.objects.exists()
