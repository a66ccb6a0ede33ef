"""A recording whose file is gone is kept and marked missing; only `scan_media --prune` deletes it."""

from __future__ import annotations

import shutil

import pytest

from media_app.models import MediaFile
from media_app.tests.conftest import library_wav, scan
from sessions_app.models import TranscriptionSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def library(media_dir) -> list[MediaFile]:
    """Two registered recordings, one session on each."""
    library_wav(media_dir / "a.wav")
    library_wav(media_dir / "b.wav")
    scan()
    media = list(MediaFile.objects.order_by("stored_path"))
    for m in media:
        TranscriptionSession.objects.create(
            model_id="whisper", media=m, media_filename=m.filename, duration_secs=m.duration_secs, state="completed"
        )
    return media


def test_a_row_whose_file_vanished_is_kept_and_marked_missing(media_dir, library):
    (media_dir / "a.wav").unlink()

    output = scan()

    a, b = MediaFile.objects.order_by("stored_path")
    assert (a.pk, b.pk) == (library[0].pk, library[1].pk)
    assert a.missing_since is not None and a.missing
    assert b.missing_since is None and not b.missing
    assert f"marked missing a.wav (media {a.pk}): its file is gone" in output
    assert "0 added, 0 found again, 1 marked missing, 0 pruned, 0 failed, 2 in the library (1 missing)" in output


def test_an_empty_media_dir_at_start_keeps_every_row_and_session_link(media_dir, library):
    for path in media_dir.glob("*.wav"):
        path.unlink()  # as an unmounted disk looks

    scan()
    scan()  # a second start with the disk still away changes nothing

    assert sorted(MediaFile.objects.values_list("pk", flat=True)) == sorted(m.pk for m in library)
    assert all(m.missing for m in MediaFile.objects.all())
    assert sorted(TranscriptionSession.objects.values_list("media_id", flat=True)) == sorted(m.pk for m in library)


def test_a_file_that_comes_back_is_found_again_under_its_old_id(media_dir, library, tmp_path):
    shutil.move(media_dir / "a.wav", tmp_path / "away.wav")
    scan()
    shutil.move(tmp_path / "away.wav", media_dir / "a.wav")

    output = scan()

    a = MediaFile.objects.get(stored_path="a.wav")
    assert a.pk == library[0].pk
    assert a.missing_since is None and not a.missing
    assert MediaFile.objects.count() == 2
    assert f"found again a.wav (media {a.pk})" in output
    assert "registered a.wav" not in output
    assert "0 added, 1 found again, 0 marked missing, 0 pruned, 0 failed, 2 in the library" in output


def test_a_second_scan_reports_a_missing_file_as_still_missing(media_dir, library):
    (media_dir / "a.wav").unlink()
    scan()

    output = scan()

    assert f"still missing a.wav (media {library[0].pk})" in output
    assert "0 marked missing" in output
    assert "(1 missing)" in output


def test_the_api_lists_a_missing_recording_as_missing(operator_client, media_dir, library):
    (media_dir / "a.wav").unlink()
    scan()

    listed = {m["id"]: m for m in operator_client.get("/api/media").json()}

    assert listed[library[0].pk]["missing"] is True
    assert listed[library[1].pk]["missing"] is False
    assert {"id", "filename", "format", "duration_secs", "size_bytes", "created_at"} <= set(listed[library[0].pk])


def test_a_missing_recording_says_why_it_cannot_be_played(media_dir, library):
    (media_dir / "a.wav").unlink()

    a = MediaFile.objects.get(pk=library[0].pk)

    assert a.missing  # even before a scan noticed
    assert a.missing_message == (
        "The file of 'a.wav' is missing from the media directory; it can be played again once it is back."
    )


def test_prune_deletes_the_rows_of_missing_files_and_reports_each(media_dir, library):
    (media_dir / "a.wav").unlink()
    scan()

    output = scan("--prune")

    assert list(MediaFile.objects.values_list("stored_path", flat=True)) == ["b.wav"]
    assert f"pruned a.wav (media {library[0].pk}): its file is gone" in output
    assert "1 pruned" in output
    assert TranscriptionSession.objects.filter(media=None).count() == 1  # its session keeps its name only


def test_prune_keeps_a_row_whose_file_is_back(media_dir, library, tmp_path):
    shutil.move(media_dir / "a.wav", tmp_path / "away.wav")
    scan()
    shutil.move(tmp_path / "away.wav", media_dir / "a.wav")

    output = scan("--prune")

    assert MediaFile.objects.count() == 2
    assert "0 pruned" in output


def test_prune_keeps_a_missing_recording_a_live_session_still_holds(media_dir, library):
    (media_dir / "a.wav").unlink()
    TranscriptionSession.objects.filter(media=library[0]).update(state="running")

    output = scan("--prune")

    assert MediaFile.objects.filter(pk=library[0].pk).exists()
    assert f"kept a.wav (media {library[0].pk}): 'a.wav' is playing in live session" in output
    assert "(1 missing)" in output
