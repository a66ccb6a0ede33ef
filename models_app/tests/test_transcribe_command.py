"""`manage.py transcribe` runs a recording through the streaming stream and prints the transcript."""

from __future__ import annotations

import io
import itertools
import json

import pytest
from django.core.management import CommandError, call_command

from models_app.tests.conftest import DEMO
from transcriber_site.testing import tone, write_audio


def transcribe(*args: str) -> str:
    out = io.StringIO()
    call_command("transcribe", *args, stdout=out)
    return out.getvalue()


def test_the_demo_prints_its_words():
    text = transcribe(str(DEMO)).lower()

    for word in ("welcome", "live transcription server", "session", "colleagues", "audio"):
        assert word in text


def test_json_lists_the_final_segments():
    segments = json.loads(transcribe(str(DEMO), "--format", "json", "--preset", "low_latency"))

    assert len(segments) >= 3
    assert all(set(s) >= {"start", "end", "text"} for s in segments)
    assert segments[0]["start"] < 1.0
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in itertools.pairwise(segments))


def test_srt_and_vtt_are_well_formed():
    srt = transcribe(str(DEMO), "--format", "srt")
    vtt = transcribe(str(DEMO), "--format", "vtt")

    assert srt.startswith("1\n00:00:0")
    assert " --> " in srt
    assert vtt.startswith("WEBVTT\n\n00:00:0")


def test_any_format_the_media_library_accepts_works(tmp_path):
    from media_app.audio import read_audio

    mp3 = write_audio(tmp_path / "demo.mp3", read_audio(DEMO), channels=1)

    assert "transcription server" in transcribe(str(mp3)).lower()


def test_realtime_feeds_at_the_pace_the_audio_plays(tmp_path):
    import time

    from media_app.audio import read_audio

    short = write_audio(tmp_path / "short.flac", read_audio(DEMO)[: 16000 * 2], channels=1)
    started = time.monotonic()
    transcribe(str(short), "--realtime")

    assert time.monotonic() - started >= 1.9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/file.wav"], "There is no file at /no/such/file.wav."),
        (["{DEMO}", "--model", "nope"], "There is no model 'nope'."),
        (["{DEMO}", "--language", "de"], "does not transcribe 'de'"),
        (["{DEMO}", "--chunk-ms", "500"], "--chunk-ms must be between 20 and 100."),
        (["{NOT_AUDIO}"], "'notes.mp3' is not an audio or video file that can be decoded."),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, args, message):
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("not audio")
    args = [a.replace("{DEMO}", str(DEMO)).replace("{NOT_AUDIO}", str(not_audio)) for a in args]

    with pytest.raises(CommandError, match=message.replace(".", r"\.").replace("(", r"\(")):
        transcribe(*args)


def test_a_silent_file_prints_nothing(tmp_path):
    silent = write_audio(tmp_path / "quiet.wav", tone(3.0, amplitude=0.0))

    assert transcribe(str(silent)) == ""
