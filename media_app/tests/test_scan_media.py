"""`manage.py scan_media` brings MEDIA_DIR and the rows into agreement, and says what it did."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest

from media_app.models import MediaFile
from media_app.tests.conftest import library_wav, scan
from transcriber_site.testing import LiveServer, tone, write_audio

pytestmark = pytest.mark.django_db


def test_a_dropped_library_wav_is_registered_where_it_lies(media_dir):
    path = library_wav(media_dir / "dropped.wav", 1.5)

    output = scan()

    media = MediaFile.objects.get()
    assert media.path == path
    assert media.filename == "dropped.wav"
    assert media.duration_secs == pytest.approx(1.5, abs=0.01)
    assert "registered dropped.wav" in output
    assert "1 added, 0 found again, 0 marked missing, 0 pruned, 0 failed, 1 in the library" in output


def test_a_dropped_mp3_is_converted_and_the_original_removed(media_dir):
    write_audio(media_dir / "talk.mp3", tone(2.0))

    output = scan()

    media = MediaFile.objects.get()
    assert media.filename == "talk.mp3"
    assert media.original_format == "mp3"
    assert not (media_dir / "talk.mp3").exists()
    assert [p.name for p in media_dir.iterdir() if not p.name.startswith(".")] == [media.stored_path]
    with wave.open(str(media.path)) as w:
        assert (w.getframerate(), w.getnchannels()) == (16000, 1)
    assert f"converted talk.mp3 -> {media.stored_path}" in output


def test_a_stereo_44k_wav_is_converted_not_registered_as_is(media_dir):
    write_audio(media_dir / "stereo.wav", tone(1.0))

    scan()

    media = MediaFile.objects.get()
    assert media.stored_path != "stereo.wav"
    assert not (media_dir / "stereo.wav").exists()


def test_a_file_that_fails_to_convert_is_reported_and_left_alone(media_dir):
    (media_dir / "broken.mp3").write_bytes(b"not audio at all" * 100)

    output = scan()

    assert not MediaFile.objects.exists()
    assert (media_dir / "broken.mp3").exists()
    assert "failed broken.mp3: 'broken.mp3' is not an audio or video file that can be decoded." in output
    assert [p.name for p in media_dir.iterdir() if p.name.endswith(".wav")] == []


def test_files_of_other_types_and_partial_files_are_not_registered(media_dir):
    (media_dir / "readme.txt").write_text("hello")
    (media_dir / ".half.wav.part").write_bytes(b"RIFF")

    output = scan()

    assert not MediaFile.objects.exists()
    assert "ignored readme.txt: not an accepted type" in output
    assert "registered .half.wav.part" not in output


def test_a_second_scan_changes_nothing(media_dir):
    write_audio(media_dir / "a.ogg", tone(1.0))
    library_wav(media_dir / "b.wav")
    scan()
    before = sorted(MediaFile.objects.values_list("stored_path", flat=True))

    output = scan()

    assert sorted(MediaFile.objects.values_list("stored_path", flat=True)) == before
    assert "0 added, 0 found again, 0 marked missing, 0 pruned, 0 failed, 2 in the library" in output


@pytest.mark.slow
def test_the_server_scans_at_start(tmp_path, media_dir):
    shutil.copy(Path(__file__).resolve().parents[2] / "media" / "demo.wav", media_dir / "demo.wav")
    write_audio(media_dir / "dropped.mp3", tone(1.0))

    with LiveServer(tmp_path, env={"MEDIA_DIR": str(media_dir)}) as server:
        import json
        import urllib.request

        request = urllib.request.Request(f"{server.url}/api/media", headers=server.operator_headers)
        listed = json.loads(urllib.request.urlopen(request).read())

    assert sorted(m["filename"] for m in listed) == ["demo.wav", "dropped.mp3"]
    demo = next(m for m in listed if m["filename"] == "demo.wav")
    assert 10 < demo["duration_secs"] < 15
