"""Whatever name the client sends, the file lands directly inside MEDIA_DIR under a safe name."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from media_app.models import MediaFile
from transcriber_site.testing import tone, write_audio

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("../../etc/evil.wav", "evil.wav"),
        ("..\\..\\windows\\evil.wav", "evil.wav"),
        ("/absolute/path/talk.wav", "talk.wav"),
        ("we\x00ird\x1bname\n.wav", "weirdname.wav"),
        ("Ünïcödé talk — 2024.wav", "Ünïcödé talk — 2024.wav"),
        ("$(rm -rf ~); `x`.wav", "$(rm -rf ~); `x`.wav"),
    ],
)
def test_names_with_path_parts_or_odd_characters_are_stored_safely(operator_client, tmp_path, media_dir, sent, shown):
    data = write_audio(tmp_path / "x.wav", tone(0.3)).read_bytes()

    response = operator_client.post("/api/media/upload", {"file": SimpleUploadedFile(sent, data)})

    assert response.status_code == 201, response.content
    assert response.json()["filename"] == shown
    media = MediaFile.objects.get()
    assert media.path.parent == media_dir
    assert media.path.exists()
    assert all(ch.isascii() and (ch.isalnum() or ch in "-_.") for ch in media.path.name)
    assert [p for p in tmp_path.rglob("*.wav") if p.parent not in (media_dir, tmp_path)] == []
