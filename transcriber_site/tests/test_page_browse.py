"""The browse tab: cards that appear, move and end by themselves; Refresh; a finished session's transcript."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from transcriber_site.tests.conftest import create_session, open_page, recording, upload

pytestmark = pytest.mark.slow


def test_a_session_card_appears_moves_and_ends_without_a_manual_refresh(page, rest, tmp_path):
    media = upload(rest, recording(tmp_path, 4.0, "browse-me.flac"))
    open_page(page)
    session = create_session(rest, media["id"])  # after the page loaded: only its own refresh can show it

    card = page.locator(f'#sessions-list li[data-session-id="{session["id"]}"]')
    expect(card).to_be_visible()
    expect(card.locator('[data-field="media"]')).to_have_text("browse-me.flac")
    expect(card.locator('[data-field="model"]')).to_have_text("Whisper")
    expect(card.locator('[data-field="listeners"]')).to_have_text("0")
    expect(card.locator('[data-field="state"]')).to_have_text("Live")
    progress = card.locator("progress")
    expect(progress).to_have_attribute("max", "4")
    page.wait_for_function("bar => bar.value > 1 && bar.value < 4", arg=progress.element_handle())
    expect(card.locator('[data-field="time"]')).not_to_have_text("0:00 / 0:04")

    expect(card.locator('[data-field="state"]')).to_have_text("Completed")
    expect(card.locator('[data-field="time"]')).to_have_text("0:04 / 0:04")
    assert progress.evaluate("bar => bar.value") == 4

    with page.expect_request("**/api/sessions"):
        page.get_by_role("button", name="Refresh").click()

    card.get_by_role("button", name=f"Open the transcript of session {session['id']}: browse-me.flac").click()
    expect(page.locator("#player")).to_be_visible()
    expect(page.locator("#player-title")).to_have_text("browse-me.flac")
    expect(page.locator("#player-state")).to_have_text("Completed")
    expect(page.locator("#player-connection")).to_have_text("Ended")
    expect(page.locator("#subtitle-finals")).to_contain_text("welcome", ignore_case=True)
    expect(page.locator("#player-pause")).to_be_disabled()
    expect(page.locator("#player-stop")).to_be_disabled()
