"""The library against a real server whose disks fill up or go away (tmpfs and bind mounts; needs root)."""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from transcriber_site.testing import LiveServer, api_call, tone, write_audio

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

OUT_OF_SPACE = "The server is out of disk space; nothing was saved. Try again once space is freed."


def mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"`mount {' '.join(args)}` was refused ({result.stderr.strip()}): these tests need root")


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A small disk of its own at `path`, to fill up."""
    path.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def upload(server: LiveServer, path: Path) -> tuple[int, str, dict]:
    body = (
        (
            f'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + b"\r\n--XyZ--\r\n"
    )
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    headers = {"Content-Type": "multipart/form-data; boundary=XyZ", **server.operator_headers}
    connection.request("POST", "/api/media/upload", body=body, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    content_type = response.getheader("Content-Type", "")
    return response.status, content_type, json.loads(raw) if content_type == "application/json" else {"body": raw}


def files_under(directory: Path) -> list[str]:
    return sorted(
        p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() and p.name != ".lock"
    )


def test_an_upload_that_fills_the_media_dir_is_a_507_and_leaves_nothing(tmp_path):
    with tmpfs(tmp_path / "media") as media_dir:
        env = {"MEDIA_DIR": str(media_dir), "UPLOAD_TEMP_DIR": str(tmp_path / "uploads")}
        with LiveServer(tmp_path, env=env) as server:
            status, _, kept = upload(server, write_audio(tmp_path / "short.flac", tone(5.0), channels=1))
            assert status == 201, kept
            before = api_call(server, "/api/media")
            stored = files_under(media_dir)
            # 90 s become a 2.9 MB wav: more than the 2 MB disk holds; the flac itself is small
            status, content_type, body = upload(server, write_audio(tmp_path / "long.flac", tone(90.0), channels=1))

            assert (status, content_type, body) == (507, "application/json", {"error": OUT_OF_SPACE})
            assert api_call(server, "/api/media") == before
            assert files_under(media_dir) == stored  # no partial wav, no temporary upload
            assert files_under(tmp_path / "uploads") == []
            assert "out of disk space" in server.log()


def test_an_upload_that_fills_the_upload_temp_dir_is_a_507_and_leaves_nothing(tmp_path):
    with tmpfs(tmp_path / "uploads") as upload_dir:
        env = {"UPLOAD_TEMP_DIR": str(upload_dir), "MAX_UPLOAD_SIZE_MB": "100"}
        with LiveServer(tmp_path, env=env) as server:
            noise = write_audio(tmp_path / "noise.wav", tone(40.0, rate=44100), rate=44100)  # 7 MB: more than 2 MB
            status, content_type, body = upload(server, noise)

            assert (status, content_type, body) == (507, "application/json", {"error": OUT_OF_SPACE})
            assert api_call(server, "/api/media") == []
            assert files_under(upload_dir) == []
            assert files_under(server.media_dir) == []


def test_an_upload_that_fills_the_system_temp_dir_is_a_507(tmp_path):
    temp_dir = tmp_path / "tmp"
    with tmpfs(temp_dir), LiveServer(tmp_path, env={"TMPDIR": str(temp_dir), "MAX_UPLOAD_SIZE_MB": "100"}) as server:
        noise = write_audio(tmp_path / "noise.wav", tone(40.0, rate=44100), rate=44100)
        try:
            status, content_type, body = upload(server, noise)
        except ConnectionResetError:  # uvicorn answers 500 and drops the rest of the body
            status, content_type, body = 500, "", {}

        assert (status, content_type, body) == (507, "application/json", {"error": OUT_OF_SPACE})
        assert api_call(server, "/api/media") == []


def test_an_unmounted_media_dir_at_start_keeps_the_library_and_finds_it_again(tmp_path):
    disk, media_dir = tmp_path / "disk", tmp_path / "library"
    disk.mkdir()
    media_dir.mkdir()
    mount("--bind", str(disk), str(media_dir))  # the media disk, mounted on MEDIA_DIR
    mounted = True
    try:
        server = LiveServer(tmp_path, env={"MEDIA_DIR": str(media_dir)})
        with server:
            ids = [
                upload(server, write_audio(tmp_path / f"{name}.flac", tone(1.0), channels=1))[2]["id"] for name in "ab"
            ]
            session = api_call(server, "/api/sessions", {"model_id": "whisper", "media_id": ids[0]})
            api_call(server, f"/api/sessions/{session['id']}", method="DELETE")
        subprocess.run(["umount", str(media_dir)], check=True)
        mounted = False
        # a conversion killed before, on the bare directory
        (media_dir / ".leftover-1234.wav.part").write_bytes(b"RIFF")

        with server:  # the disk did not come up: MEDIA_DIR is an empty directory
            listed = api_call(server, "/api/media")
            assert sorted(m["id"] for m in listed) == sorted(ids)
            assert all(m["missing"] for m in listed), listed
            assert api_call(server, f"/api/sessions/{session['id']}")["media_id"] == ids[0]
            assert api_call(server, "/api/health") is not None
            assert "marked missing" in server.log()
        assert not (media_dir / ".leftover-1234.wav.part").exists()

        mount("--bind", str(disk), str(media_dir))
        mounted = True
        with server:  # the disk is back
            listed = api_call(server, "/api/media")
            assert sorted(m["id"] for m in listed) == sorted(ids)
            assert not any(m["missing"] for m in listed), listed
            assert api_call(server, f"/api/sessions/{session['id']}")["media_id"] == ids[0]
            assert api_call(server, "/api/health") is not None
    finally:
        if mounted:
            subprocess.run(["umount", "--lazy", str(media_dir)], check=True)
    shutil.rmtree(disk)
