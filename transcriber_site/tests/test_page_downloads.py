"""The player's downloads say which transcript they give, and offer the final one once it is made."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from transcriber_site.tests.conftest import create_session, open_page, recording, upload

pytestmark = pytest.mark.slow


def test_the_final_transcript_is_offered_when_it_is_ready_and_the_live_one_stays_a_choice(page, rest, tmp_path):
    media = upload(rest, recording(tmp_path, 3.0, "versions.flac"))
    session = create_session(rest, media["id"])
    open_page(page, f"/?session={session['id']}")
    version = page.locator("#player-version")
    srt = page.get_by_role("link", name="SRT")

    expect(page.locator("#player-version-label")).to_have_text("Live transcript, as shown")
    expect(version).to_be_hidden()
    expect(srt).to_have_attribute("href", f"/api/sessions/{session['id']}/transcript?format=srt&version=live")

    expect(page.locator("#player-state")).to_have_text("Completed")
    # the transcript event comes on the socket the page keeps open after the end
    expect(page.locator("#player-version-note")).to_have_text("The final transcript is ready.")
    expect(version).to_be_visible()
    expect(version).to_have_value("final")
    expect(page.locator("#player-version-label")).to_be_hidden()
    expect(srt).to_have_attribute("href", f"/api/sessions/{session['id']}/transcript?format=srt&version=final")
    with page.expect_download() as download:
        srt.click()
    assert download.value.suggested_filename == f"session-{session['id']}-versions-final.srt"

    version.select_option(label="Live transcript, as shown")
    with page.expect_download() as download:
        srt.click()
    assert download.value.suggested_filename == f"session-{session['id']}-versions-live.srt"


def test_a_finished_session_opened_later_offers_both_versions(page, rest, tmp_path):
    media = upload(rest, recording(tmp_path, 2.0, "later.flac"))
    session = create_session(rest, media["id"])
    deadline = time.monotonic() + 20  # the session plays in real time, then the offline pass runs
    while "final" not in rest.get(f"/api/sessions/{session['id']}").json()["transcripts"]:
        assert time.monotonic() < deadline, "no final transcript within 20 s"
        page.wait_for_timeout(200)

    open_page(page, f"/?session={session['id']}")

    expect(page.locator("#player-version")).to_be_visible()
    expect(page.locator("#player-version")).to_have_value("final")
    expect(page.locator("#player-version option")).to_have_text(
        ["Final transcript (offline pass)", "Live transcript, as shown"]
    )
