"""How operators sign in: the sign-in page, sign-out, `/?token=` links, and the first run's link."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from transcriber_site.management.commands.serve import Command as Serve
from transcriber_site.models import ApiToken
from transcriber_site.operators import LOCAL, first_run_sign_in_link, make_operator
from transcriber_site.views import LINK_REFUSED

pytestmark = pytest.mark.django_db


def signed_in_as(client: Client) -> str | None:
    return client.get("/api/config").json()["username"]


def test_the_sign_in_page_signs_an_operator_in_and_sign_out_signs_out(client):
    user, _ = make_operator("diane")
    user.set_password("right-one")
    user.save()

    page = client.get("/sign-in")
    response = client.post("/sign-in", {"username": "diane", "password": "right-one"})

    assert page.status_code == 200 and b'name="password"' in page.content
    assert response.status_code == 302 and response["Location"] == "/"
    assert signed_in_as(client) == "diane" and client.get("/api/config").json()["operator"] is True
    assert client.post("/sign-out").status_code == 302
    assert signed_in_as(client) is None


def test_a_wrong_password_shows_the_form_again_with_its_error(client):
    make_operator("diane")[0].set_password("right-one")

    response = client.post("/sign-in", {"username": "diane", "password": "wrong"})

    assert response.status_code == 200
    assert b"enter a correct username and password" in response.content
    assert signed_in_as(client) is None


def test_sign_in_attempts_on_the_page_are_throttled_too(client):
    user, _ = make_operator("diane")
    user.set_password("right-one")
    user.save()

    statuses = [client.post("/sign-in", {"username": "diane", "password": f"guess-{i}"}).status_code for i in range(5)]

    assert statuses == [200, 200, 200, 200, 429]
    assert client.post("/sign-in", {"username": "diane", "password": "right-one"}).status_code == 429


def test_a_token_link_signs_the_browser_in_and_leaves_the_address_without_it(client):
    user, _ = make_operator("diane")
    _, key = ApiToken.issue(user)

    response = client.get(f"/?token={key}&session=7")

    assert response.status_code == 302
    assert response["Location"] == "/?session=7"  # the token is gone, the rest of the address stays
    assert signed_in_as(client) == "diane"


def test_a_one_time_link_works_once(client):
    user, _ = make_operator("diane")
    key = ApiToken.issue_sign_in_link(user, lifetime_secs=600)

    first = client.get(f"/?token={key}")
    client.post("/sign-out")
    again = Client().get(f"/?token={key}")

    assert first["Location"] == "/"
    assert again["Location"] == "/sign-in"
    assert ApiToken.user_for(key) is None  # and it is never an API token


@pytest.mark.parametrize("kind", ["unknown", "expired", "not an operator", "revoked"])
def test_a_bad_link_signs_nobody_in_and_says_why(client, kind):
    user = make_operator("diane")[0] if kind != "not an operator" else get_user_model().objects.create_user("sam")
    key = ApiToken.issue_sign_in_link(user, lifetime_secs=600)
    token = ApiToken.objects.get()
    if kind == "unknown":
        key = "not-a-key"
    elif kind == "expired":
        token.expires_at = timezone.now() - timedelta(seconds=1)
        token.save()
    elif kind == "revoked":
        token.revoke()

    response = client.get(f"/?token={key}", follow=True)

    assert response.redirect_chain == [("/sign-in", 302)]
    assert LINK_REFUSED.encode() in response.content
    assert signed_in_as(client) is None


def test_the_first_run_makes_a_local_operator_and_a_fresh_link_each_start(client):
    name, key = first_run_sign_in_link()
    second = first_run_sign_in_link()

    assert name == LOCAL
    local = get_user_model().objects.get(username=LOCAL)
    assert local.is_superuser and not local.has_usable_password()
    assert second is not None and second[1] != key
    assert client.get(f"/?token={key}")["Location"] == "/"
    assert signed_in_as(client) == LOCAL


def test_no_local_operator_is_made_where_operators_exist():
    make_operator("diane")

    assert first_run_sign_in_link() is None
    assert not get_user_model().objects.filter(username=LOCAL).exists()


def test_serve_prints_the_link_where_it_listens(client):
    out = io.StringIO()
    command = Serve(stdout=out)

    command.print_sign_in_link("0.0.0.0", 8123)

    link = next(line.strip() for line in out.getvalue().splitlines() if "?token=" in line)
    assert link.startswith("http://127.0.0.1:8123/?token=")
    assert client.get(link.removeprefix("http://127.0.0.1:8123"))["Location"] == "/"
    assert signed_in_as(client) == LOCAL


def test_an_operator_in_the_group_can_stop_a_session_in_the_admin(client, operator, make_admin_session):
    session = make_admin_session()
    client.force_login(operator)

    response = client.post(
        "/admin/sessions_app/transcriptionsession/",
        {"action": "stop_sessions", "_selected_action": [session.pk]},
        follow=True,
    )

    session.refresh_from_db()
    assert response.status_code == 200
    assert session.state == "stopped" and session.stopped_by == operator


def test_staff_without_the_operate_permission_cannot_stop_sessions_in_the_admin(client, make_admin_session):
    from django.contrib.auth.models import Permission

    staff = get_user_model().objects.create_user("viewer", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_transcriptionsession"))
    session = make_admin_session()
    client.force_login(staff)

    page = client.get("/admin/sessions_app/transcriptionsession/")
    client.post(
        "/admin/sessions_app/transcriptionsession/", {"action": "stop_sessions", "_selected_action": [session.pk]}
    )

    session.refresh_from_db()
    assert page.status_code == 200 and b"stop_sessions" not in page.content
    assert session.state == "running"


@pytest.fixture
def make_admin_session(tmp_path):
    from media_app.models import MediaFile
    from sessions_app.models import State, TranscriptionSession
    from transcriber_site.testing import tone, write_audio

    def make() -> TranscriptionSession:
        media = MediaFile.import_file(write_audio(tmp_path / "a.wav", tone(1.0)), "a.wav")
        return TranscriptionSession.objects.create(
            model_id="whisper", media=media, media_filename=media.filename, duration_secs=1.0, state=State.RUNNING
        )

    return make
