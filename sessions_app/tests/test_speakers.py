"""Speakers in sessions: on every final word and the partial, cues broken where the speaker changes,
in the final transcript and the exports, renamed by operators, and nothing of it without the model."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async

from models_app import diarization
from models_app.engines.sortformer import SETUPS
from models_app.tests.sortformer_graphs import plan_from_turns, write_sortformer
from sessions_app.models import TranscriptionSession, TranscriptSegment, TranscriptVersion
from sessions_app.tests.conftest import GroupListener, new_session, running_worker, start

pytestmark = pytest.mark.django_db(transaction=True)

CHANGE_SECS = 5.0  # the demo's first voice is speaker 0 until here, then speaker 1 (the plan says so)


@pytest.fixture
def sortformer(tmp_path, settings):
    """The scripted diarizer installed where DIAR_MODEL_PATH points."""
    plan = plan_from_turns([(0.0, CHANGE_SECS, 0), (CHANGE_SECS, 60.0, 1)], 60.0)
    settings.DIAR_MODEL_PATH = str(write_sortformer(tmp_path / "sortformer", plan, SETUPS["low"].left).parent)
    diarization.reset_for_tests()
    return plan


def rows(session: TranscriptionSession, version: str = TranscriptVersion.LIVE) -> list[TranscriptSegment]:
    return list(TranscriptSegment.objects.filter(session=session, version=version).order_by("index"))


def planned(word: list) -> int | None:
    """The plan's speaker for a stored word [text, start, end], or None for one across the change."""
    _, start, end = word
    if end <= CHANGE_SECS:
        return 0
    if start >= CHANGE_SECS:
        return 1
    return None


def check_speakers(segments: list[TranscriptSegment]) -> None:
    words = [(word, segment.speaker) for segment in segments for word in segment.words]
    assert len(words) > 10
    assert {speaker for _, speaker in words} == {0, 1}
    for word, speaker in words:
        if planned(word) is not None:
            assert speaker == planned(word), word
    cues: dict[int, set[int | None]] = {}
    for segment in segments:
        cues.setdefault(segment.cue, set()).add(segment.speaker)
    assert all(len(speakers) == 1 for speakers in cues.values())  # no cue holds two speakers


async def test_a_diarized_session_puts_the_planned_speaker_on_every_word_live_and_final(make_media, sortformer):
    media = await database_sync_to_async(make_media)(12.0)
    session = await database_sync_to_async(new_session)(media, diarize=True)
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        await listener.until("session.end", timeout=60)
        await listener.until("session.transcript", timeout=60)

    check_speakers(await database_sync_to_async(rows)(session))
    check_speakers(await database_sync_to_async(rows)(session, TranscriptVersion.FINAL))
    finals = [e for e in listener.of("session.subtitle") if e["is_final"]]
    assert {e["speaker"] for e in finals} == {0, 1}
    # a partial's speaker is a guess from the newest activity (None before the first step, or the last
    # final's speaker where the diarizer is behind), but it is someone once speech has gone on
    partials = [e for e in listener.of("session.subtitle") if not e["is_final"] and e["text"].strip()]
    assert all(e["speaker"] in (0, 1) for e in partials if e["start"] >= 2.0)
    assert any(e["speaker"] == 0 for e in partials if e["end"] < CHANGE_SECS)
    assert any(e["speaker"] == 1 for e in partials if e["start"] >= CHANGE_SECS)


async def test_a_session_asked_not_to_diarize_has_no_speakers(make_media, sortformer):
    media = await database_sync_to_async(make_media)(4.0)
    session = await database_sync_to_async(new_session)(media, diarize=False)
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        await listener.until("session.end", timeout=60)
    segments = await database_sync_to_async(rows)(session)
    assert segments and all(segment.speaker is None for segment in segments)
    assert all(e["speaker"] is None for e in listener.of("session.subtitle"))


# --- the API -----------------------------------------------------------------------------------------


def create(client, media, **fields):
    body = {"model_id": "whisper", "media_id": media.id, **fields}
    return client.post("/api/sessions", json.dumps(body), content_type="application/json")


def test_sessions_diarize_by_default_where_the_model_is_installed(operator_client, make_media, sortformer):
    media = make_media(2.0)
    assert create(operator_client, media).json()["diarize"] is True
    assert create(operator_client, media, diarize=False).json()["diarize"] is False


def test_without_the_model_sessions_run_without_speakers_and_asking_for_them_says_why(operator_client, make_media):
    media = make_media(2.0)
    assert create(operator_client, media).json()["diarize"] is False
    refused = create(operator_client, media, diarize=True)
    assert refused.status_code == 400
    assert "Field 'diarize'" in refused.json()["error"] and "download_model sortformer" in refused.json()["error"]
    assert create(operator_client, media, diarize="yes").status_code == 400  # strict: a bool
    assert TranscriptionSession.objects.count() == 1


def test_the_models_list_says_whether_speakers_can_be_told_apart(client, sortformer, settings, tmp_path):
    shown = client.get("/api/models").json()
    assert all(model["diarization"]["available"] for model in shown)
    assert shown[0]["diarization"]["latency_secs"] == pytest.approx(1.04)
    settings.DIAR_MODEL_PATH = str(tmp_path / "gone")
    diarization.reset_for_tests()
    missing = client.get("/api/models").json()[0]["diarization"]
    assert missing["available"] is False and "not installed" in missing["unavailable_reason"]


def patch(client, session, body):
    return client.patch(f"/api/sessions/{session.pk}", json.dumps(body), content_type="application/json")


def said_by_two(session: TranscriptionSession) -> None:
    words: list[list[tuple[str, float, float]]] = [
        [(" Hello", 0.0, 0.4), (" there.", 0.4, 0.9)],
        [(" Hi", 1.5, 1.8), (" <you>.", 1.8, 2.2)],
    ]
    for index, (speaker, said) in enumerate(zip((0, 1), words, strict=True)):
        text = "".join(w[0] for w in said)
        TranscriptSegment.objects.create(
            session=session, index=index, cue=index, text=text, start_time=said[0][1], end_time=said[-1][2],
            speaker=speaker, words=[list(w) for w in said],
        )  # fmt: skip


def test_an_operator_renames_speakers_and_every_export_and_page_follows(operator_client, client, make_media):
    session = new_session(make_media(3.0))
    said_by_two(session)

    async def renamed() -> dict:
        async with GroupListener(session.pk) as listener:
            await database_sync_to_async(patch)(operator_client, session, {"speaker_names": {"0": " Diane "}})
            return await listener.until("session.speakers", timeout=5)

    event = asyncio.run(renamed())
    assert event["names"] == {"0": "Diane"}
    session.refresh_from_db()
    assert session.speaker_names == {"0": "Diane"}

    def export(fmt: str) -> str:
        return client.get(f"/api/sessions/{session.pk}/transcript?format={fmt}").content.decode()

    assert "Diane: Hello there.\n" in export("srt") and "Speaker 2: Hi &lt;you&gt;." not in export("srt")
    assert "Speaker 2: Hi <you>.\n" in export("srt")
    assert "<v Diane>Hello there.\n" in export("vtt") and "<v Speaker 2>Hi &lt;you&gt;.\n" in export("vtt")
    assert export("txt") == "Diane: Hello there.\n\nSpeaker 2: Hi <you>.\n"
    assert [c["speaker_name"] for c in json.loads(export("json"))] == ["Diane", "Speaker 2"]

    both = patch(operator_client, session, {"speaker_names": {"1": "Marc", "0": None}}).json()
    assert both["speaker_names"] == {"1": "Marc"}  # merged; null gives back "Speaker 1"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"speaker_names": {"4": "Nobody"}}, "speaker_names.4"),
        ({"speaker_names": {"0": "x" * 41}}, "Field 'speaker_names': a speaker's name is printable text of at most 40"),
        ({"speaker_names": {"0": "line\nbreak"}}, "printable"),
        ({"speaker_names": {"0": 7}}, "speaker_names.0"),
        ({"speaker_names": ["Diane"]}, "speaker_names"),
        ({"state": "stopped"}, "state"),
        ({}, "speaker_names"),
    ],
)
def test_a_wrong_rename_is_refused_with_what_is_wrong_and_changes_nothing(operator_client, make_media, body, says):
    session = new_session(make_media(1.0))
    response = patch(operator_client, session, body)
    assert response.status_code == 400 and says in response.json()["error"]
    session.refresh_from_db()
    assert session.speaker_names == {}


def test_only_operators_rename(client, make_media):
    session = new_session(make_media(1.0))
    assert patch(client, session, {"speaker_names": {"0": "Diane"}}).status_code in (401, 403)
    session.refresh_from_db()
    assert session.speaker_names == {}


# --- finals wait for their speakers, within a bound -------------------------------------------------------


class SlowSpeakers:
    """A diarizer that has covered `covered_secs` of the audio, and guesses beyond."""

    def __init__(self, covered_secs: float) -> None:
        self.covered_secs = covered_secs
        self.error = None
        self.timeline = diarization.Timeline()
        plan = plan_from_turns([(0.0, 2.0, 0), (2.0, 10.0, 1)], 10.0)
        confirmed = round(covered_secs / 0.08)
        self.timeline.extend(plan[:confirmed], plan[confirmed : confirmed + 7])


def test_finals_wait_for_the_diarizer_but_never_longer_than_the_bound(make_media, monkeypatch):
    from models_app.streaming import Word
    from sessions_app import runner

    clock = [100.0]
    monkeypatch.setattr(runner.time, "monotonic", lambda: clock[0])
    run = runner.SessionRun(None, new_session(make_media(1.0)))
    run.speakers = SlowSpeakers(covered_secs=1.6)
    words = [Word(" one", 0.2, 0.6), Word(" two", 1.0, 1.5), Word(" three", 2.0, 2.3), Word(" four", 2.3, 2.6)]
    run.waiting = [(word, 0.9, clock[0]) for word in words]

    assert run.release_finals() == 2  # the words the diarizer has covered
    assert [(row.text, row.speaker) for row in run.unsaved] == [(" one two", 0)]
    clock[0] += runner.SPEAKER_WAIT_SECS - 0.1
    assert run.release_finals() == 0  # the rest still wait...
    clock[0] += 0.2
    assert run.release_finals() == 2  # ...until the bound: then they take the newest guess
    assert [(row.text, row.speaker) for row in run.unsaved[1:]] == [(" three four", 1)]
    assert run.unsaved[0].cue != run.unsaved[1].cue  # a new speaker, a new cue


def test_renaming_a_session_that_is_not_there_is_a_404_whatever_the_body(operator_client):
    for body in ({"speaker_names": {"0": "Diane"}}, {"speaker_names": {"9": "?"}}):
        response = operator_client.patch("/api/sessions/424242", json.dumps(body), content_type="application/json")
        assert response.status_code == 404 and response.json()["error"] == "There is no session with id 424242."
