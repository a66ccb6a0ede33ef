"""Uploads of every accepted format become one 16 kHz mono 16-bit wav in MEDIA_DIR."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
from django.test import Client

from media_app.models import MediaFile
from transcriber_site.testing import tone, write_audio, write_video_with_audio

pytestmark = pytest.mark.django_db


def upload(operator_client: Client, path: Path, name: str | None = None):
    with path.open("rb") as f:
        if name is not None:
            from django.core.files.uploadedfile import SimpleUploadedFile

            return operator_client.post("/api/media/upload", {"file": SimpleUploadedFile(name, f.read())})
        return operator_client.post("/api/media/upload", {"file": f})


def stored_files(media_dir: Path) -> list[Path]:
    return sorted(p for p in media_dir.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("ext", ["wav", "mp3", "flac", "ogg", "opus", "m4a", "aac", "mkv", "webm"])
def test_each_audio_format_is_stored_as_16k_mono_wav(operator_client, tmp_path, media_dir, ext):
    source = write_audio(tmp_path / f"tone.{ext}", tone(2.0))

    response = upload(operator_client, source)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["filename"] == f"tone.{ext}"
    assert body["format"] == ext
    assert body["duration_secs"] == pytest.approx(2.0, abs=0.1)
    [stored] = stored_files(media_dir)
    with wave.open(str(stored)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.getnframes() == pytest.approx(32000, abs=1600)
    media = MediaFile.objects.get(pk=body["id"])
    assert media.path == stored
    assert media.size_bytes == stored.stat().st_size == body["size_bytes"]
    assert (media.sample_rate, media.channels) == (16000, 1)


def test_the_original_files_size_is_kept_beside_the_stored_wavs(operator_client, tmp_path, media_dir):
    source = write_audio(tmp_path / "talk.mp3", tone(3.0))

    body = upload(operator_client, source).json()

    [stored] = stored_files(media_dir)
    assert body["original_size_bytes"] == source.stat().st_size  # what the page shows beside "mp3"
    assert body["size_bytes"] == stored.stat().st_size != source.stat().st_size
    assert operator_client.get("/api/media").json()[0]["original_size_bytes"] == source.stat().st_size


def test_the_audio_track_of_a_video_is_stored(operator_client, tmp_path, media_dir):
    source = write_video_with_audio(tmp_path / "clip.mp4", tone(1.5))

    response = upload(operator_client, source)

    assert response.status_code == 201, response.content
    assert response.json()["duration_secs"] == pytest.approx(1.5, abs=0.15)
    assert len(stored_files(media_dir)) == 1


def test_the_stored_audio_is_the_uploaded_sound(operator_client, tmp_path, media_dir):
    import numpy as np

    source = write_audio(tmp_path / "a.flac", tone(1.0, freq=1000.0))
    upload(operator_client, source)
    [stored] = stored_files(media_dir)
    with wave.open(str(stored)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32)
    spectrum = np.abs(np.fft.rfft(pcm))
    peak_hz = np.argmax(spectrum) * 16000 / len(pcm)
    assert peak_hz == pytest.approx(1000, abs=5)


def test_the_list_shows_uploads_newest_first(operator_client, tmp_path):
    first = upload(operator_client, write_audio(tmp_path / "first.wav", tone(0.5))).json()
    second = upload(operator_client, write_audio(tmp_path / "second.mp3", tone(0.5))).json()

    listed = operator_client.get("/api/media").json()

    assert [m["id"] for m in listed] == [second["id"], first["id"]]
    assert set(listed[0]) >= {"id", "filename", "format", "duration_secs", "size_bytes", "created_at"}


def test_two_uploads_with_the_same_name_are_both_kept(operator_client, tmp_path, media_dir):
    source = write_audio(tmp_path / "talk.wav", tone(0.5))

    a = upload(operator_client, source).json()
    b = upload(operator_client, source).json()

    assert a["id"] != b["id"]
    assert a["filename"] == b["filename"] == "talk.wav"
    assert len(stored_files(media_dir)) == 2
    assert MediaFile.objects.get(pk=a["id"]).path != MediaFile.objects.get(pk=b["id"]).path
