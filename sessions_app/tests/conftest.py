from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from media_app.audio import read_audio
from media_app.models import MediaFile
from sessions_app import events
from sessions_app.models import TranscriptionSession
from sessions_app.runner import SessionWorker
from transcriber_site.testing import LiveServer, write_audio

DEMO = Path(__file__).resolve().parents[2] / "media" / "demo.wav"


@pytest.fixture
def make_media(tmp_path) -> Callable[..., MediaFile]:
    """A library recording: the first `seconds` of the demo (speech), or silence after it."""

    def make(seconds: float = 4.0, name: str = "demo-part.flac") -> MediaFile:
        audio = read_audio(DEMO)[: int(16000 * seconds)]
        source = write_audio(tmp_path / name, audio, channels=1)
        return MediaFile.import_file(source, name)

    return make


def new_session(media: MediaFile, model_id: str = "whisper", **fields: Any) -> TranscriptionSession:
    return TranscriptionSession.objects.create(
        model_id=model_id,
        media=media,
        media_filename=media.filename,
        duration_secs=media.duration_secs,
        language=fields.pop("language", "en"),
        **fields,
    )


class GroupListener:
    """Reads a session's group events as a client would (the WebSocket comes later)."""

    def __init__(self, session_id: int) -> None:
        self.session_id = session_id
        self.events: list[dict[str, Any]] = []
        self.layer = get_channel_layer()

    async def __aenter__(self) -> GroupListener:
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(events.group(self.session_id), self.channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.layer.group_discard(events.group(self.session_id), self.channel)

    async def until(self, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        """Collect events until one of type `kind` (e.g. "session.end") arrives."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.layer.receive(self.channel)
                self.events.append(event)
                if event["type"] == kind:
                    return event

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    @property
    def final_text(self) -> str:
        return " ".join(e["text"] for e in self.of("session.subtitle") if e["is_final"])


@contextlib.asynccontextmanager
async def running_worker(**kwargs: Any) -> AsyncIterator[SessionWorker]:
    worker = SessionWorker(**kwargs)
    task = asyncio.create_task(worker.serve())
    try:
        yield worker
    finally:
        await worker.shutdown("The test ended.")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def start(session: TranscriptionSession) -> None:
    await events.dispatch_start(session.pk)


async def reload(session: TranscriptionSession) -> TranscriptionSession:
    return await database_sync_to_async(TranscriptionSession.objects.get)(pk=session.pk)


@contextlib.contextmanager
def demo_server(root: Path, recordings: dict[str, float | None], **env: str) -> Iterator[LiveServer]:
    """The real server, its library holding the demo's first `seconds` under each name (None: all of it)."""
    media_dir = root / "media"
    media_dir.mkdir()
    audio = read_audio(DEMO)
    for name, seconds in recordings.items():
        write_audio(media_dir / name, audio if seconds is None else audio[: int(16000 * seconds)], channels=1)
    with LiveServer(root, env={"MEDIA_DIR": str(media_dir), **env}) as live:
        yield live
