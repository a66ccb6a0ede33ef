"""Sign-in attempts are throttled: a user name guessed at from one address is locked out for a while."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db


def sign_in(client, username: str, password: str) -> int:
    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": password})
    return response.status_code


def test_the_fifth_failure_locks_out_even_the_right_password_with_429(client):
    get_user_model().objects.create_superuser("diane", password="right-one")

    failures = [sign_in(client, "diane", f"guess-{i}") for i in range(5)]
    locked = sign_in(client, "diane", "right-one")

    assert failures == [200, 200, 200, 200, 429]  # the form again with its error, then the lockout
    assert locked == 429
    assert "_auth_user_id" not in client.session


def test_a_lockout_is_for_that_user_name_only_and_a_success_resets_the_count(client):
    users = get_user_model().objects
    users.create_superuser("diane", password="right-one")
    users.create_superuser("sam", password="other-one")

    for i in range(4):
        sign_in(client, "diane", f"guess-{i}")
    assert sign_in(client, "diane", "right-one") == 302  # the fifth attempt succeeds and resets the count
    client.logout()
    for i in range(4):
        assert sign_in(client, "diane", f"again-{i}") == 200  # counted from zero again
    for i in range(5):
        sign_in(client, "sam", f"guess-{i}")
    assert sign_in(client, "sam", "other-one") == 429
    assert sign_in(client, "diane", "right-one") == 302
