"""A real conversation, diarized live: Nagg and Nell of Beckett's Endgame (two recorded voices, fifteen turns)
through the bundled Whisper, with a scripted Sortformer that answers the recording's reference turns
(transcriber_site/speech/endgame_nagg_nell.rttm). The model's answers are right by construction; what is
tested is everything after them on real speech: finals waiting for their speakers, each word's speaker
from Whisper's own word times, cues broken at every change, and the exports."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from channels.db import database_sync_to_async

from media_app.models import MediaFile
from models_app import diarization
from models_app.engines.sortformer import SETUPS
from models_app.tests.sortformer_graphs import plan_from_turns, write_sortformer
from sessions_app.models import State, TranscriptionSession, TranscriptSegment, TranscriptVersion
from sessions_app.tests.conftest import GroupListener, new_session, running_worker, start
from transcriber_site.speech_set import clip, reference_turns
from transcriber_site.testing import write_audio

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]  # slow: fetches the recordings once

RECORDING = "endgame_nagg_nell"
SLOTS = {"nagg": 0, "nell": 1}  # Sortformer numbers speakers in the order they first speak
EDGE_SECS = 0.15  # a word whose midpoint is this near a turn's edge, or outside every turn, is not judged
SESSION_SECS = 120.0  # 28 s of audio played in real time, then the final pass, on a loaded 2-core machine


@pytest.fixture
def reference(tmp_path, settings) -> list[tuple[float, float, str]]:
    """The reference turns, and the scripted diarizer that follows them installed where DIAR_MODEL_PATH points."""
    turns = reference_turns(RECORDING)
    plan = plan_from_turns([(start, end, SLOTS[who]) for start, end, who in turns], clip(RECORDING).seconds)
    settings.DIAR_MODEL_PATH = str(write_sortformer(tmp_path / "sortformer", plan, SETUPS["low"].left).parent)
    diarization.reset_for_tests()
    return turns


def import_recording(directory: Path) -> MediaFile:
    source = write_audio(directory / f"{RECORDING}.flac", clip(RECORDING).audio, channels=1)
    return MediaFile.import_file(source, f"{RECORDING}.flac")


def rows(session: TranscriptionSession, version: str) -> list[TranscriptSegment]:
    return list(TranscriptSegment.objects.filter(session=session, version=version).order_by("index"))


def judged_speaker(word: list, turns: list[tuple[float, float, str]]) -> int | None:
    """The reference's speaker slot for a stored word [text, start, end] whose midpoint lies well inside a turn."""
    _, start, end = word
    middle = (start + end) / 2
    for first, last, who in turns:
        if first + EDGE_SECS < middle < last - EDGE_SECS:
            return SLOTS[who]
    return None


def check_speakers(segments: list[TranscriptSegment], turns: list[tuple[float, float, str]], version: str) -> None:
    words = [(word, segment.speaker) for segment in segments for word in segment.words]
    judged = [(word, speaker, judged_speaker(word, turns)) for word, speaker in words]
    judged = [(word, speaker, expected) for word, speaker, expected in judged if expected is not None]
    misses = [f"{word} has {speaker}, not {expected}" for word, speaker, expected in judged if speaker != expected]
    matched = len(judged) - len(misses)
    print(f"{version}: {matched} of {len(judged)} judged words ({len(words)} in all) have the reference's speaker")
    assert len(judged) >= 40  # Whisper hears some 74 words, about 52 of them well inside a turn
    # All of them, as measured in every run, live and final. The 0.15 s edge is what makes all of them fair to ask
    # for: Whisper stretches a turn's last word over the silence after it, and such a word is not judged.
    assert not misses, misses
    cues: dict[int, set[int | None]] = {}
    for segment in segments:
        cues.setdefault(segment.cue, set()).add(segment.speaker)
    assert all(len(speakers) == 1 for speakers in cues.values()), cues  # no cue holds two speakers


def export(client, session: TranscriptionSession, fmt: str, version: str) -> str:
    return client.get(f"/api/sessions/{session.pk}/transcript?format={fmt}&version={version}").content.decode()


def srt_cues(srt: str) -> list[tuple[float, float, str, str]]:
    """(start, shown until, speaker label, text) of each SubRip cue that names its speaker."""
    found = []
    for block in srt.strip().split("\n\n"):
        _, times, text = block.split("\n", 2)
        start, end = (
            int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000
            for h, m, s, ms in re.findall(r"(\d+):(\d+):(\d+),(\d+)", times)
        )
        if named := re.match(r"(Speaker \d): (.*)", text, flags=re.DOTALL):
            found.append((start, end, named.group(1), named.group(2).replace("\n", " ")))
    return found


def changes(labels: list[str]) -> list[str]:
    """`labels` with each run of one label kept once."""
    return [said for i, said in enumerate(labels) if i == 0 or labels[i - 1] != said]


async def test_every_word_of_a_two_voice_conversation_has_its_speaker_live_and_final(reference, client, tmp_path):
    media = await database_sync_to_async(import_recording)(tmp_path)
    session = await database_sync_to_async(new_session)(media, diarize=True)
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        ended = await listener.until("session.end", timeout=SESSION_SECS)
        final = await listener.until("session.transcript", timeout=SESSION_SECS)
    assert ended["state"] == State.COMPLETED and final["ready"], (ended, final)

    for version in (TranscriptVersion.LIVE, TranscriptVersion.FINAL):
        check_speakers(await database_sync_to_async(rows)(session, version), reference, version)

    live = await database_sync_to_async(rows)(session, TranscriptVersion.LIVE)
    shown = srt_cues(await database_sync_to_async(export)(client, session, "srt", TranscriptVersion.LIVE))
    # the export labels each cue with its rows' speaker
    speakers_of_cues = [live[0].speaker] + [b.speaker for a, b in itertools.pairwise(live) if b.cue != a.cue]
    assert [said for _, _, said, _ in shown] == [f"Speaker {speaker + 1}" for speaker in speakers_of_cues]
    # and the conversation's turns come in the reference's order: every turn Whisper's words can be judged in
    # (a one-word reply timed over the silence around it is not judged, and may take the turn before or after)
    cue_turns = [(segment.cue, judged_speaker(word, reference)) for segment in live for word in segment.words]
    judged_cues = {cue: slot for cue, slot in cue_turns if slot is not None}
    heard = changes([label_of(judged_cues[cue]) for cue in sorted(judged_cues)])
    judged_turns = [
        SLOTS[who]
        for first, last, who in reference
        if any(first + EDGE_SECS < (w[1] + w[2]) / 2 < last - EDGE_SECS for segment in live for w in segment.words)
    ]
    assert heard == changes([label_of(slot) for slot in judged_turns])
    assert len(heard) >= 6  # 7 of the reference's 14 runs of one speaker hold words judged here


def label_of(slot: int) -> str:
    return f"Speaker {slot + 1}"
