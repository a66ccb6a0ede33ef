"""The admin lists and searches recordings, and deleting there removes the files too."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from media_app.models import MediaFile
from transcriber_site.testing import tone, write_audio

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(admin)  # sign-in itself is tested in test_login_throttle
    return client


@pytest.fixture
def two_recordings(admin_client, tmp_path) -> list[MediaFile]:
    data = write_audio(tmp_path / "x.wav", tone(0.5)).read_bytes()
    for name in ("interview.wav", "lecture.wav"):
        admin_client.post("/api/media/upload", {"file": SimpleUploadedFile(name, data)})
    return list(MediaFile.objects.all())


def test_the_list_shows_and_searches_recordings(admin_client, two_recordings):
    page = admin_client.get("/admin/media_app/mediafile/?q=interv").content.decode()

    assert "interview.wav" in page
    assert "lecture.wav" not in page
    assert "0:01" in page or "0:00" in page  # duration column


def test_the_delete_action_removes_the_files(admin_client, two_recordings):
    paths = [m.path for m in two_recordings]

    response = admin_client.post(
        "/admin/media_app/mediafile/",
        {"action": "delete_selected", "_selected_action": [m.pk for m in two_recordings], "post": "yes"},
    )

    assert response.status_code == 302
    assert not MediaFile.objects.exists()
    assert not any(p.exists() for p in paths)


def test_deleting_one_recording_removes_its_file(admin_client, two_recordings):
    media = two_recordings[0]

    admin_client.post(f"/admin/media_app/mediafile/{media.pk}/delete/", {"post": "yes"})

    assert not media.path.exists()
    assert MediaFile.objects.count() == 1
