"""Bad uploads get a specific status and sentence, and leave no file and no row behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from media_app.models import MediaFile
from transcriber_site.testing import tone, write_audio, write_video_with_audio

pytestmark = pytest.mark.django_db


def post(operator_client, name: str, data: bytes):
    return operator_client.post("/api/media/upload", {"file": SimpleUploadedFile(name, data)})


@pytest.fixture(autouse=True)
def nothing_left_behind(media_dir: Path):
    yield
    leftovers = [p.relative_to(media_dir).as_posix() for p in media_dir.rglob("*") if p.is_file() and p.name != ".lock"]
    assert leftovers == [], f"left in MEDIA_DIR: {leftovers}"
    assert MediaFile.objects.count() == 0


def test_an_empty_file_is_refused(operator_client):
    response = post(operator_client, "silence.wav", b"")

    assert response.status_code == 400
    assert response.json() == {"error": "'silence.wav' is empty."}


@pytest.mark.parametrize("name", ["notes.mp3", "notes.wav", "notes.mp4", "notes.flac"])
def test_content_that_is_not_audio_is_refused_whatever_its_extension(operator_client, name):
    response = post(operator_client, name, b"This is a text file, not a recording.\n" * 50)

    assert response.status_code == 415
    assert response.json()["error"] == f"'{name}' is not an audio or video file that can be decoded."


def test_an_image_with_an_audio_extension_is_refused(operator_client, tmp_path):
    import av
    import numpy as np

    image = tmp_path / "picture.png"
    with av.open(str(image), "w", format="image2") as c:
        s = c.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = 8, 8, "rgb24"
        for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")):
            c.mux(p)

    response = post(operator_client, "picture.mp3", image.read_bytes())

    assert response.status_code == 422
    assert response.json() == {"error": "'picture.mp3' has no audio track."}


@pytest.mark.parametrize(
    ("ext", "reason"),
    [
        ("wav", "is truncated: it declares 6.0 s of audio but only 3.0 s could be decoded."),
        ("mp3", "is truncated: it declares 6.0 s of audio but only 3.0 s could be decoded."),
        ("mkv", "is truncated: it declares 6.0 s of audio but only 3.0 s could be decoded."),
        ("flac", "is damaged or truncated: decoding failed after"),
        ("aac", "is damaged or truncated: decoding failed after"),
        ("m4a", "is damaged or truncated: it cannot be opened."),
    ],
)
def test_a_truncated_file_is_refused(operator_client, tmp_path, ext, reason):
    whole = write_audio(tmp_path / f"long.{ext}", tone(6.0)).read_bytes()

    response = post(operator_client, f"long.{ext}", whole[: len(whole) // 2])

    assert response.status_code == 422, response.content
    assert response.json()["error"].startswith(f"'long.{ext}' {reason}")


@pytest.mark.parametrize("name", ["report.pdf", "notes.txt", "program.exe", "noextension", "archive.tar.gz"])
def test_an_unsupported_type_is_refused_with_415(operator_client, tmp_path, name):
    data = write_audio(tmp_path / "x.wav", tone(0.5)).read_bytes()

    response = post(operator_client, name, data)

    assert response.status_code == 415
    assert response.json()["error"].startswith("Unsupported file type")
    assert "Accepted types: aac, avi, flac" in response.json()["error"]


def test_a_video_without_an_audio_track_is_refused(operator_client, tmp_path):
    video = write_video_with_audio(tmp_path / "mute.mp4", tone(1.0), with_audio=False)

    response = post(operator_client, "mute.mp4", video.read_bytes())

    assert response.status_code == 422
    assert response.json() == {"error": "'mute.mp4' has no audio track."}


def test_a_request_without_the_file_field_is_refused(operator_client):
    response = operator_client.post("/api/media/upload", {"other": "x"})

    assert response.status_code == 400
    assert "field 'file'" in response.json()["error"]


def test_an_upload_over_the_size_limit_is_refused_with_413(operator_client, tmp_path, settings):
    settings.MAX_UPLOAD_SIZE_MB = 1
    data = write_audio(tmp_path / "big.wav", tone(40.0)).read_bytes()
    assert len(data) > 1024 * 1024

    response = post(operator_client, "big.wav", data)

    assert response.status_code == 413
    assert response.json() == {"error": "The upload is larger than the 1 MB limit (MAX_UPLOAD_SIZE_MB)."}


def test_get_on_the_upload_endpoint_is_405(operator_client):
    response = operator_client.get("/api/media/upload")

    assert response.status_code == 405
    assert response["Allow"] == "POST"
