"""Operator actions refuse everyone else: anonymous 401, signed in without the permission 403.

Token and cookie operators succeed; a cookie operator's request from another site fails
CSRF; OPEN_ACCESS lets anyone operate; /api/health shows details to operators only.
"""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from media_app.models import MediaFile
from sessions_app.models import State, TranscriptionSession
from sessions_app.tests.conftest import new_session
from transcriber_site.access import SIGN_IN_TO_OPERATE
from transcriber_site.models import ApiToken
from transcriber_site.startup import warn_if_open
from transcriber_site.testing import tone, write_audio

pytestmark = pytest.mark.django_db

# (method, path): every operator action of the API
OPERATOR_ACTIONS = [
    ("GET", "/api/media"),
    ("POST", "/api/media/upload"),
    ("GET", "/api/media/{media}"),
    ("DELETE", "/api/media/{media}"),
    ("POST", "/api/sessions"),
    ("DELETE", "/api/sessions/{session}"),
    ("POST", "/api/sessions/{session}/pause"),
    ("POST", "/api/sessions/{session}/resume"),
    ("POST", "/api/sessions/{session}/end"),
]


@pytest.fixture
def world(make_media, tmp_path):
    """A recording, a running session on it, and a wav that an upload would send."""
    media = make_media(2.0)
    session = new_session(media, state=State.RUNNING)
    return {"media": media, "session": session, "wav": write_audio(tmp_path / "new.wav", tone(0.5)).read_bytes()}


def call(client: Client, method: str, path: str, world: dict, **headers: str):
    url = path.format(media=world["media"].pk, session=world["session"].pk)
    if path == "/api/media/upload":
        return client.post(url, {"file": SimpleUploadedFile("new.wav", world["wav"])}, headers=headers)
    if method == "POST":
        body = {"model_id": "whisper", "media_id": world["media"].pk} if path == "/api/sessions" else {}
        return client.post(url, json.dumps(body), content_type="application/json", headers=headers)
    return client.generic(method, url, headers=headers)


def snapshot(world: dict) -> tuple:
    media = [(m.pk, m.filename, m.missing_since) for m in MediaFile.objects.all()]
    sessions = [(s.pk, s.state) for s in TranscriptionSession.objects.all()]
    files = sorted(p.name for p in world["media"].path.parent.iterdir())
    return media, sessions, files


@pytest.mark.parametrize(("method", "path"), OPERATOR_ACTIONS)
def test_anonymous_callers_get_401_and_nothing_changes(client, world, method, path):
    before = snapshot(world)

    response = call(client, method, path, world)

    assert response.status_code == 401, response.content
    assert response.json() == {"error": SIGN_IN_TO_OPERATE}
    assert snapshot(world) == before


@pytest.mark.parametrize(("method", "path"), OPERATOR_ACTIONS)
def test_signed_in_users_without_the_permission_get_403(client, world, method, path):
    client.force_login(User.objects.create_user("visitor", password="pw"))
    before = snapshot(world)

    response = call(client, method, path, world)

    assert response.status_code == 403, response.content
    assert "visitor is not an operator" in response.json()["error"]
    assert snapshot(world) == before


@pytest.mark.parametrize(("method", "path"), OPERATOR_ACTIONS)
def test_a_revoked_token_gets_401_and_nothing_changes(client, operator, world, method, path):
    token, key = ApiToken.issue(operator)
    token.revoke()
    before = snapshot(world)

    response = call(client, method, path, world, authorization=f"Bearer {key}")

    assert response.status_code == 401
    assert snapshot(world) == before


def test_a_token_operator_uploads_starts_and_stops_and_is_recorded(client, operator, world):
    _, key = ApiToken.issue(operator)
    bearer = {"authorization": f"Bearer {key}"}

    uploaded = call(client, "POST", "/api/media/upload", world, **bearer)
    created = call(client, "POST", "/api/sessions", world, **bearer)
    assert uploaded.status_code == 201 and created.status_code == 201, (uploaded.content, created.content)
    stopped = client.delete(f"/api/sessions/{created.json()['id']}", headers=bearer)

    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    assert stopped.json()["created_by"] == stopped.json()["stopped_by"] == operator.username
    session = TranscriptionSession.objects.get(pk=created.json()["id"])
    assert session.created_by == session.stopped_by == operator


def test_a_cookie_operator_with_the_csrf_token_succeeds(operator, world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    client.get("/")  # the page sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    response = call(client, "POST", "/api/sessions/{session}/pause", world, x_csrftoken=token)

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "paused"


def test_a_cross_site_post_with_an_operators_cookie_fails_csrf(operator, world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    client.get("/")
    before = snapshot(world)

    # what a page on another site can make the operator's browser send: the cookie, no token
    response = call(client, "DELETE", "/api/sessions/{session}", world, origin="https://elsewhere.example")
    no_token = call(client, "POST", "/api/sessions", world)

    assert response.status_code == 403
    assert "cross-site request forgery" in response.json()["error"]
    assert "elsewhere.example" in response.json()["error"]
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]
    assert snapshot(world) == before


def test_a_token_request_needs_no_csrf_token(operator, world):
    client = Client(enforce_csrf_checks=True)
    _, key = ApiToken.issue(operator)

    response = call(client, "POST", "/api/sessions/{session}/pause", world, authorization=f"Bearer {key}")

    assert response.status_code == 200, response.content


def test_a_text_plain_body_gets_415(operator_client, world):
    response = operator_client.post(
        "/api/sessions", json.dumps({"model_id": "whisper", "media_id": world["media"].pk}), content_type="text/plain"
    )

    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert TranscriptionSession.objects.count() == 1


def test_open_access_lets_anyone_operate_and_says_so(client, world, settings, caplog):
    settings.OPEN_ACCESS = True

    response = call(client, "POST", "/api/sessions", world)
    with caplog.at_level(logging.WARNING, logger="transcriber_site.startup"):
        warn_if_open()

    assert response.status_code == 201, response.content
    assert response.json()["created_by"] is None
    assert "OPEN_ACCESS is on" in caplog.text


def test_without_open_access_there_is_no_warning(settings, caplog):
    with caplog.at_level(logging.WARNING, logger="transcriber_site.startup"):
        warn_if_open()

    assert caplog.text == ""


def test_listeners_see_sessions_but_not_who_ran_them_or_the_share_link(client, operator_client, world):
    listed = client.get("/api/sessions").json()
    operators = operator_client.get("/api/sessions").json()

    assert [s["id"] for s in listed] == [world["session"].pk]
    assert not {"share_url", "created_by", "stopped_by"} & set(listed[0])
    assert operators[0]["share_url"] == f"/?session={world['session'].pk}&key={world['session'].share_key}"


@pytest.mark.django_db(transaction=True)
async def test_health_gives_anonymous_callers_counts_only(async_client, async_operator_client):
    anonymous = (await async_client.get("/api/health")).json()
    operator = (await async_operator_client.get("/api/health")).json()

    counts = {"server", "peers", "audio_sources", "audio_listeners", "listeners", "live_sessions"}
    assert set(anonymous) == counts
    assert set(operator) == counts | {"tasks", "rss_mb", "loop_lag", "supervised", "workers"}


def test_each_session_gets_its_own_share_key(world, make_media):
    other = new_session(world["media"])

    assert len(world["session"].share_key) >= 20
    assert other.share_key != world["session"].share_key


def test_only_a_live_source_has_an_input_to_end(operator_client, world):
    pk = world["session"].pk

    response = operator_client.post(f"/api/sessions/{pk}/end", "{}", content_type="application/json")

    assert response.status_code == 409
    assert response.json() == {"error": f"Session {pk} plays a recording; it has no live input to end (stop it)."}
    world["session"].refresh_from_db()
    assert world["session"].input_ended_at is None and world["session"].state == State.RUNNING
