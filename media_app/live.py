"""Live recordings: a wav in the library that grows while a live source plays.

A live session (a microphone, a network stream) writes what it receives, as 16 kHz mono
16-bit PCM, into a library file named after the session. Whatever reads the session (the
worker that transcribes, each web process that relays the audio to listeners, on this
machine or another one that shares MEDIA_DIR) reads that file up to where it has grown.
The header's sizes are rewritten after every append, so the file is a
valid wav at every moment, and one left by a crash plays as far as it got. Once the session
ends it is an ordinary recording: it replays, and it gets an offline final transcript.
"""

from __future__ import annotations

from django.utils import timezone

from media_app.audio import SAMPLE_RATE
from media_app.models import MediaFile, _unique_stored_name, media_dir_lock
from media_app.wavfile import LiveWriter, truncate


def new_live_media(name: str) -> MediaFile:
    """The library row and empty file of a live recording, shown as `name`."""
    from django.conf import settings

    media_dir = settings.MEDIA_DIR
    media_dir.mkdir(parents=True, exist_ok=True)
    with media_dir_lock():
        path = _unique_stored_name(media_dir, f"{name}.wav")
        LiveWriter(path).close()  # a valid, empty wav: the row never names a file that is not there
        return MediaFile.objects.create(
            filename=f"{name}.wav",
            stored_path=path.name,
            original_format="live",
            duration_secs=0.0,
            size_bytes=path.stat().st_size,
            original_size_bytes=path.stat().st_size,  # the wav it records is the original
        )


def finish_live_media(media: MediaFile, duration_secs: float) -> None:
    """The live recording is over: cut it to the `duration_secs` its session played (a source
    that sends ahead of the clock has sent a little more), and record its length and size."""
    frames = truncate(media.path, round(duration_secs * SAMPLE_RATE))
    size = media.path.stat().st_size
    MediaFile.objects.filter(pk=media.pk).update(
        duration_secs=frames / SAMPLE_RATE, size_bytes=size, original_size_bytes=size, created_at=timezone.now()
    )
