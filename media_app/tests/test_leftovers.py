"""What a conversion killed half way leaves behind goes at the next start; what a live one writes stays."""

from __future__ import annotations

import fcntl
import io
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from media_app import audio
from media_app.models import MediaFile
from transcriber_site.testing import BASE_DIR, tone, write_audio

pytestmark = pytest.mark.django_db


def scan() -> str:
    out = io.StringIO()
    call_command("scan_media", stdout=out)
    return out.getvalue()


def files_under(*directories: Path) -> list[str]:
    return sorted(
        p.relative_to(directory).as_posix()
        for directory in directories
        for p in directory.rglob("*")
        if p.is_file() and p.name != ".lock"
    )


def ours(media_dir: Path, temp_dir: Path) -> list[str]:
    """The files of MEDIA_DIR, and the uploads of the system temp dir (others write there too)."""
    return files_under(media_dir) + [name for name in files_under(temp_dir) if "upload" in name]


def locked_by_someone(path: Path) -> bool:
    with open(path, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_the_scan_removes_partial_and_upload_files_nobody_writes(media_dir):
    (media_dir / ".talk-1a2b3c4d.wav.part").write_bytes(b"RIFF half a wav")
    (media_dir / ".uploads").mkdir()
    (media_dir / ".uploads" / "upload-k9x8y7.mp3").write_bytes(b"half an mp3")

    output = scan()

    assert files_under(media_dir) == []
    assert "removed .talk-1a2b3c4d.wav.part: left by a conversion that did not finish" in output
    assert "removed .uploads/upload-k9x8y7.mp3: left by an upload that did not finish" in output


def test_the_scan_keeps_the_files_a_live_conversion_holds(media_dir):
    partial = media_dir / ".talk-1a2b3c4d.wav.part"
    (media_dir / ".uploads").mkdir()
    upload = media_dir / ".uploads" / "upload-k9x8y7.mp3"
    partial.write_bytes(b"RIFF")
    upload.write_bytes(b"ID3")
    with open(partial, "rb") as a, open(upload, "rb") as b:
        fcntl.flock(a, fcntl.LOCK_EX)  # as a conversion in another process holds them
        fcntl.flock(b, fcntl.LOCK_EX)

        output = scan()

        assert partial.exists() and upload.exists()
    assert "removed" not in output


def test_the_scan_leaves_other_files_of_the_upload_dir_alone(media_dir, settings, tmp_path):
    shared = tmp_path / "shared-tmp"  # an operator may point UPLOAD_TEMP_DIR at a directory others use
    shared.mkdir()
    (shared / "someone-elses.txt").write_text("not ours")
    settings.UPLOAD_TEMP_DIR = str(shared)

    scan()

    assert (shared / "someone-elses.txt").exists()


def test_an_upload_holds_its_temporary_and_partial_files_locked_while_it_converts(
    operator_client, media_dir, monkeypatch
):
    seen: dict[str, bool] = {}
    real = audio.decode_pcm

    def watched(source, name):
        for pcm in real(source, name):
            yield pcm
            if not seen:
                for path in [*media_dir.glob(".*.part"), *(media_dir / ".uploads").glob("*")]:
                    seen[path.relative_to(media_dir).as_posix()] = locked_by_someone(path)

    monkeypatch.setattr(audio, "decode_pcm", watched)
    data = write_audio(media_dir.parent / "talk.mp3", tone(2.0)).read_bytes()

    response = operator_client.post("/api/media/upload", {"file": SimpleUploadedFile("talk.mp3", data)})

    assert response.status_code == 201
    assert len(seen) == 2, seen  # the temporary upload and the partial wav
    assert any(name.startswith(".uploads/") for name in seen) and any(name.endswith(".part") for name in seen), seen
    assert all(seen.values()), f"not locked while converting: {seen}"
    assert files_under(media_dir) == [MediaFile.objects.get().stored_path]


# An upload in its own process that stops half way through the conversion and waits to be killed.
HELD_UPLOAD = """
import os, sys, threading
import django
os.environ["OPEN_ACCESS"] = "true"  # who uploads does not matter here: the process is killed half way
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
from media_app import audio

real = audio.decode_pcm

def held(source, name):
    for i, pcm in enumerate(real(source, name)):
        yield pcm
        if i == 2:
            print("converting", flush=True)
            threading.Event().wait()

audio.decode_pcm = held
setup_test_environment()
with open(sys.argv[1], "rb") as f:
    Client().post("/api/media/upload", {"file": f})
"""


def start_held_upload(path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-c", HELD_UPLOAD, str(path)], env=env, cwd=BASE_DIR, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    assert ready and process.stdout.readline() == b"converting\n", "the upload did not reach its conversion"
    return process


@pytest.mark.slow
def test_an_upload_killed_mid_conversion_leaves_nothing_after_the_next_start(tmp_path):
    media_dir, temp_dir = tmp_path / "media", tmp_path / "tmp"
    temp_dir.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "transcriber_site.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "MEDIA_DIR": str(media_dir),
        "TMPDIR": str(temp_dir),  # where Django's own temporary uploads would go
        "SECRET_KEY": "test-only",
    }
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, cwd=BASE_DIR, check=True)
    killed = start_held_upload(write_audio(tmp_path / "killed.flac", tone(5.0)), env)
    alive = start_held_upload(write_audio(tmp_path / "alive.mp3", tone(5.0)), env)
    try:
        before = ours(media_dir, temp_dir)
        assert any(name.endswith(".part") and "killed" in name for name in before), before
        assert any(name.endswith(".flac") for name in before), before
        killed.send_signal(signal.SIGKILL)
        killed.wait()

        restart = subprocess.run([*manage, "scan_media"], env=env, cwd=BASE_DIR, check=True, capture_output=True)

        after = ours(media_dir, temp_dir)
        assert [name for name in after if "killed" in name or name.endswith(".flac")] == [], after
        assert any(name.endswith(".part") and "alive" in name for name in after), after
        assert any(name.endswith(".mp3") for name in after), after
        assert restart.stdout.decode().count("removed ") == 2, restart.stdout.decode()
    finally:
        alive.send_signal(signal.SIGKILL)
        alive.wait()

    subprocess.run([*manage, "scan_media"], env=env, cwd=BASE_DIR, check=True, capture_output=True)
    assert ours(media_dir, temp_dir) == []
