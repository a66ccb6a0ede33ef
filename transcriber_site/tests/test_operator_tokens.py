"""Operators and their API tokens: `create_operator`, `Authorization: Bearer`, revoking in the admin."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from transcriber_site.models import ApiToken, digest, is_operator

pytestmark = pytest.mark.django_db


def create_operator(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("create_operator", *args, stdout=out)
    return out.getvalue().splitlines()


def test_create_operator_makes_a_user_an_operator_once():
    assert create_operator("diane") == ["created operator diane"]
    assert create_operator("diane") == ["updated operator diane"]

    user = get_user_model().objects.get(username="diane")
    assert is_operator(user)
    assert not user.has_usable_password()  # signs in with a token until a password is set
    assert get_user_model().objects.count() == 1


def test_an_existing_user_becomes_an_operator():
    user = get_user_model().objects.create_user("sam", password="x")
    assert not is_operator(user)

    create_operator("sam")

    user = get_user_model().objects.get(pk=user.pk)  # permissions are cached on the instance
    assert is_operator(user)
    assert user.check_password("x")  # a password it had stays


def test_with_token_the_key_is_the_last_line_alone_and_acts_as_the_operator(client):
    lines = create_operator("diane", "--token")
    key = lines[-1]

    assert len(key) >= 40 and " " not in key
    assert not ApiToken.objects.filter(key_digest=key).exists()  # only its digest is stored
    assert ApiToken.objects.get(key_digest=digest(key)).prefix == key[:8]
    anonymous = client.get("/api/config").json()
    signed = client.get("/api/config", headers={"Authorization": f"Bearer {key}"}).json()
    assert (anonymous["operator"], signed["operator"]) == (False, True)
    assert ApiToken.objects.get().last_used_at is not None


@pytest.mark.parametrize("header", ["Bearer nonsense", "Bearer ", "bearer nonsense"])
def test_an_unknown_token_is_a_401_with_a_sentence(client, header):
    response = client.get("/api/sessions", headers={"Authorization": header})

    assert response.status_code == 401
    assert response.json() == {"error": "The API token is unknown or has been revoked."}
    assert response["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.django_db(transaction=True)
async def test_the_async_health_view_sees_the_token_too(async_client):
    from asgiref.sync import sync_to_async

    lines = await sync_to_async(create_operator)("diane", "--token")

    response = await async_client.get("/api/health", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    response = await async_client.get("/api/health", headers={"Authorization": f"Bearer {lines[-1]}"})
    assert response.status_code == 200
    assert "supervised" in response.json()  # an operator's details, which anonymous callers do not get


def test_a_revoked_token_or_an_inactive_operator_signs_nobody_in(client):
    key = create_operator("diane", "--token")[-1]
    token = ApiToken.objects.get()
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/config", headers=headers).status_code == 200

    get_user_model().objects.filter(username="diane").update(is_active=False)
    assert client.get("/api/config", headers=headers).status_code == 401
    get_user_model().objects.filter(username="diane").update(is_active=True)
    token.revoke()
    assert client.get("/api/config", headers=headers).status_code == 401


def test_the_admin_lists_tokens_by_prefix_and_revokes_them(admin_client):
    key = create_operator("diane", "--token")[-1]
    token = ApiToken.objects.get()

    listing = admin_client.get("/admin/transcriber_site/apitoken/")
    assert listing.status_code == 200
    assert key[:8] in listing.content.decode()
    assert key not in listing.content.decode()
    admin_client.post(
        "/admin/transcriber_site/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    token.refresh_from_db()
    assert token.revoked_at is not None
