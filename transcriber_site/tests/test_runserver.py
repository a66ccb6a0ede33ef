"""`manage.py runserver` (daphne, for development) serves HTTP and WebSocket through ASGI too."""

from __future__ import annotations

import asyncio

import pytest

from media_app.audio import read_audio
from transcriber_site.testing import DEMO_PATH, AudioListener, LiveServer, api_call, write_audio

pytestmark = pytest.mark.slow


def test_runserver_serves_the_api_and_the_session_websocket(tmp_path, media_dir):
    write_audio(media_dir / "hello.flac", read_audio(DEMO_PATH)[: 16000 * 2], channels=1)
    with LiveServer(tmp_path, env={"MEDIA_DIR": str(media_dir)}, server="daphne") as server:
        [media] = api_call(server, "/api/media")
        session = api_call(server, "/api/sessions", {"model_id": "whisper", "media_id": media["id"]})

        async def listen():
            async with AudioListener(server.url, session["id"]) as listener:
                info = await listener.next("session_info")
                end = await listener.next("end", within=20)
                return info, end

        info, end = asyncio.run(listen())

    assert info["session"]["id"] == session["id"]
    assert end["state"] == "completed"
