"""The real server with its embedded worker: a session made over HTTP plays and completes."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from media_app.audio import read_audio
from sessions_app.tests.conftest import DEMO
from transcriber_site.testing import LiveServer, write_audio

pytestmark = pytest.mark.slow


def call(server: LiveServer, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **server.operator_headers}
    request = urllib.request.Request(server.url + path, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


def test_a_session_created_over_http_runs_in_the_server_and_completes(tmp_path, media_dir):
    write_audio(media_dir / "hello.flac", read_audio(DEMO)[: int(16000 * 3.3)], channels=1)
    with LiveServer(tmp_path, env={"MEDIA_DIR": str(media_dir)}) as server:
        [media] = json.loads(call(server, "/api/media"))
        session = json.loads(call(server, "/api/sessions", {"model_id": "whisper", "media_id": media["id"]}))
        deadline = time.monotonic() + 30
        while json.loads(call(server, f"/api/sessions/{session['id']}"))["state"] in ("starting", "running"):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.25)
        final = json.loads(call(server, f"/api/sessions/{session['id']}"))
        transcript = call(server, f"/api/sessions/{session['id']}/transcript?format=txt")

    assert final["state"] == "completed"
    assert final["progress_secs"] == pytest.approx(3.3, abs=0.05)
    assert "live transcription server" in transcript.lower()
