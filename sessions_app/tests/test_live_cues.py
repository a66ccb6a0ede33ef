"""A real session's finals become readable cues: stored, sent and exported the same way."""

from __future__ import annotations

import itertools
import re

import pytest
from channels.db import database_sync_to_async

from models_app.transcript import CUE_MAX_SECS, CUE_MIN_SECS, fits, starts_word
from sessions_app.consumers import SessionConsumer
from sessions_app.models import TranscriptSegment, TranscriptVersion
from sessions_app.tests.conftest import GroupListener, new_session, running_worker, start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SRT_TIMES = re.compile(r"(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)")


def srt_times(srt: str) -> list[tuple[float, float]]:
    def secs(h: str, m: str, s: str, ms: str) -> float:
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    return [(secs(*m.groups()[:4]), secs(*m.groups()[4:])) for m in SRT_TIMES.finditer(srt)]


async def test_the_live_rows_of_a_session_group_into_cues_and_the_srt_shows_each_a_second(make_media, async_client):
    media = await database_sync_to_async(make_media)(9.0)
    session = await database_sync_to_async(new_session)(media)
    async with GroupListener(session.pk) as listener, running_worker():
        await start(session)
        await listener.until("session.end")
        rows = await database_sync_to_async(
            lambda: list(TranscriptSegment.objects.filter(session=session, version=TranscriptVersion.LIVE))
        )()
        srt = (
            await async_client.get(f"/api/sessions/{session.pk}/transcript?format=srt&version=live")
        ).content.decode()

    finals = [e for e in listener.of("session.subtitle") if e["is_final"]]
    assert [(e["index"], e["cue"]) for e in finals] == [(r.index, r.cue) for r in rows]
    assert rows and rows[0].cue == 0
    assert all(b.cue - a.cue in (0, 1) for a, b in itertools.pairwise(rows))  # in order, none skipped
    cues = [list(group) for _, group in itertools.groupby(rows, key=lambda r: r.cue)]
    assert 1 < len(cues) < len(rows)  # sentences said over several finals are one cue each
    for cue in cues:
        assert fits("".join(r.text for r in cue))
        assert cue[-1].end_time - cue[0].start_time <= CUE_MAX_SECS
        assert starts_word(cue[0].text)  # never with punctuation or the rest of a word

    times = srt_times(srt)
    assert len(times) == len(cues)
    assert [shown for shown, _ in times] == [pytest.approx(cue[0].start_time, abs=0.001) for cue in cues]
    for (shown, gone), (next_shown, _) in itertools.pairwise(times):
        assert gone <= next_shown
        assert gone - shown >= CUE_MIN_SECS - 0.001 or gone == next_shown
    assert times[-1][1] - times[-1][0] >= CUE_MIN_SECS - 0.001


@pytest.mark.django_db(transaction=False)
def test_a_joining_listener_is_replayed_the_live_cues_not_the_final_version(make_media):
    session = new_session(make_media(2.0))
    for version, text in [(TranscriptVersion.LIVE, " Helo world."), (TranscriptVersion.FINAL, " Hello world.")]:
        TranscriptSegment.objects.create(
            session=session, version=version, index=0, cue=0, text=text, start_time=0.0, end_time=1.0
        )

    _, replay = SessionConsumer._history(session)

    assert [(e["text"], e["cue"], e["index"]) for e in replay] == [(" Helo world.", 0, 0)]
