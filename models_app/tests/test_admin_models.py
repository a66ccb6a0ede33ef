"""The admin's read-only page of speech models."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db


def test_the_page_lists_availability_loading_and_memory(client, settings, tmp_path):
    settings.TDT_MODEL_PATH = tmp_path / "tdt"
    admin = User.objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(admin)  # sign-in itself is tested in test_login_throttle

    page = client.get("/admin/models_app/speechmodel/").content.decode()

    assert "Parakeet TDT 0.6B v3" in page and "Canary 1B v2" in page and "Whisper" in page
    assert "no: Parakeet TDT is not downloaded" in page
    assert "<td>yes</td>" in page  # whisper is available


def test_the_page_needs_a_staff_login(client):
    response = client.get("/admin/models_app/speechmodel/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
