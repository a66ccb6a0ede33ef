"""`manage.py transcribe` prints a recording's transcript: one offline pass by default, or the
streaming replay a session does with --live."""

from __future__ import annotations

import io
import itertools
import json
import re

import pytest
from django.core.management import CommandError, call_command

from models_app.tests.conftest import DEMO
from transcriber_site.testing import tone, write_audio


def transcribe(*args: str, stderr: io.StringIO | None = None) -> str:
    out = io.StringIO()
    call_command("transcribe", *args, stdout=out, stderr=stderr or io.StringIO())
    return out.getvalue()


def says_the_demo(text: str) -> bool:
    text = text.lower()
    return all(w in text for w in ("welcome", "transcription server", "session", "colleagues", "audio"))


def test_by_default_one_offline_pass_prints_the_demos_words(monkeypatch):
    from models_app.registry import registry

    passes = []
    offline = registry.transcribe_offline
    monkeypatch.setattr(registry, "transcribe_offline", lambda *a, **kw: passes.append(a) or offline(*a, **kw))
    monkeypatch.setattr(registry, "create_transcriber", None)  # no stream is made

    assert says_the_demo(transcribe(str(DEMO)))
    assert len(passes) == 1


def test_live_replays_the_file_through_the_stream():
    assert says_the_demo(transcribe(str(DEMO), "--live", "--preset", "low_latency", "--chunk-ms", "50"))


@pytest.mark.parametrize("mode", [[], ["--live"]])
def test_json_lists_the_cues_in_order(mode):
    cues = json.loads(transcribe(str(DEMO), "--format", "json", *mode))

    assert len(cues) >= 3
    assert all(set(c) >= {"start", "end", "text", "words"} for c in cues)
    assert cues[0]["start"] < 1.0
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in itertools.pairwise(cues))


def test_partials_go_to_stderr_as_they_come_and_stdout_keeps_the_transcript():
    err = io.StringIO()
    out = transcribe(str(DEMO), "--live", "--partials", stderr=err)
    lines = err.getvalue().splitlines()

    partials = [line for line in lines if line.startswith("[partial ")]
    finals = [line for line in lines if line.startswith("[final ")]
    assert partials and finals
    assert all(re.fullmatch(r"\[partial \d+\.\ds\] \S.*", line) for line in partials)
    assert all(re.fullmatch(r"\[final \d+\.\d-\d+\.\ds\] \S.*", line) for line in finals)
    assert "welcome" in " ".join(finals).lower()
    assert "[partial" not in out and says_the_demo(out)


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
    transcribe(str(short), "--live", "--realtime")

    assert time.monotonic() - started >= 1.9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/file.wav"], "There is no file at /no/such/file.wav."),
        (["{DEMO}", "--model", "nope"], "There is no model 'nope'."),
        (["{DEMO}", "--language", "de"], "does not transcribe 'de'"),
        (["{DEMO}", "--live", "--chunk-ms", "500"], "--chunk-ms must be between 20 and 100."),
        (["{DEMO}", "--live", "--model", "nope"], "There is no model 'nope'."),
        (["{DEMO}", "--preset", "low_latency"], "--preset applies only to --live"),
        (["{DEMO}", "--realtime"], "--realtime applies only to --live"),
        (["{DEMO}", "--chunk-ms", "50"], "--chunk-ms applies only to --live"),
        (["{DEMO}", "--partials"], "--partials needs --live"),
        (["{NOT_AUDIO}"], "'notes.mp3' is not an audio or video file that can be decoded."),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, args, message):
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("not audio")
    args = [a.replace("{DEMO}", str(DEMO)).replace("{NOT_AUDIO}", str(not_audio)) for a in args]

    with pytest.raises(CommandError, match=message.replace(".", r"\.").replace("(", r"\(")):
        transcribe(*args)


@pytest.mark.parametrize("mode", [[], ["--live"]])
def test_a_silent_file_prints_nothing(tmp_path, mode):
    silent = write_audio(tmp_path / "quiet.wav", tone(3.0, amplitude=0.0))

    assert transcribe(str(silent), *mode) == ""
