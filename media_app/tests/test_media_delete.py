"""Deleting a recording removes its row and its stored file; unknown ids are 404."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from media_app.models import MediaFile
from transcriber_site.testing import tone, write_audio

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(operator_client, tmp_path) -> MediaFile:
    data = write_audio(tmp_path / "x.wav", tone(0.5)).read_bytes()
    response = operator_client.post("/api/media/upload", {"file": SimpleUploadedFile("x.wav", data)})
    return MediaFile.objects.get(pk=response.json()["id"])


def test_delete_removes_the_row_and_the_file(operator_client, media):
    path = media.path
    assert path.exists()

    response = operator_client.delete(f"/api/media/{media.id}")

    assert response.status_code == 204
    assert not path.exists()
    assert not MediaFile.objects.exists()


def test_delete_of_an_unknown_id_is_404(operator_client):
    response = operator_client.delete("/api/media/999")

    assert response.status_code == 404
    assert response.json() == {"error": "There is no media file with id 999."}


def test_get_of_one_recording(operator_client, media):
    response = operator_client.get(f"/api/media/{media.id}")

    assert response.status_code == 200
    assert response.json() == media.to_dict()


def test_delete_when_the_file_already_vanished_still_removes_the_row(operator_client, media):
    media.path.unlink()

    response = operator_client.delete(f"/api/media/{media.id}")

    assert response.status_code == 204
    assert not MediaFile.objects.exists()
