"""axe-core finds nothing serious or critical on any tab, in the player, or on the sign-in page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from transcriber_site.testing import LiveServer
from transcriber_site.tests.axe import describe, serious_violations
from transcriber_site.tests.conftest import Console, create_session, new_page, open_page, recording, sign_in, upload

pytestmark = pytest.mark.slow


def axe_page(browser: Browser, server: LiveServer, console: Console, operator: bool) -> Iterator[Page]:
    # the policy allows only the page's own scripts: axe's script tag needs it bypassed
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.url, bypass_csp=True)
    try:
        if operator:
            sign_in(context, server.token)
        yield new_page(context, console)
    finally:
        context.close()


@pytest.fixture
def operator_page(browser: Browser, server: LiveServer, console: Console) -> Iterator[Page]:
    yield from axe_page(browser, server, console, operator=True)


@pytest.fixture
def visitor_page(browser: Browser, server: LiveServer, console: Console) -> Iterator[Page]:
    yield from axe_page(browser, server, console, operator=False)


def assert_accessible(page: Page, where: str) -> None:
    found = serious_violations(page)
    assert not found, f"axe on {where}:\n{describe(found)}"


def test_every_tab_has_no_serious_violations(operator_page, rest, tmp_path):
    page = operator_page
    media = upload(rest, recording(tmp_path, 1.0, "axe-tabs.flac"))
    create_session(rest, media["id"])  # a card on Browse, a row in the library
    open_page(page)
    expect(page.locator("#sessions-list li").first).to_be_visible()
    assert_accessible(page, "the Browse tab")

    page.get_by_role("tab", name="Create session").click()
    expect(page.locator("#create-model option").first).to_be_attached()
    assert_accessible(page, "the Create tab")
    for summary in page.locator("#create-unavailable summary, #create-diarize-missing summary").all():
        summary.click()  # each "how to get it", open
    assert_accessible(page, "the Create tab, with what is missing open")
    page.get_by_role("radio", name="Microphone").check()
    page.get_by_role("radio", name="Stream URL").check()
    assert_accessible(page, "the Create tab, with a stream URL")

    page.get_by_role("tab", name="Upload media").click()
    expect(page.locator(f'#media-rows tr[data-media-id="{media["id"]}"]')).to_be_visible()
    page.locator("#upload-file").set_input_files(recording(tmp_path, 1.0, "axe-upload.flac"))
    expect(page.locator("#upload-done")).to_be_visible()
    assert_accessible(page, "the Upload tab, after an upload")


def test_the_player_has_no_serious_violations_while_a_session_plays_and_after(operator_page, rest, tmp_path):
    page = operator_page
    media = upload(rest, recording(tmp_path, 5.0, "axe-player.flac"))
    session = create_session(rest, media["id"])
    open_page(page, f"/?session={session['id']}")
    expect(page.locator("#player-connection")).to_have_text("Connected: audio and subtitles")
    expect(page.locator("#subtitle-finals li").first).to_be_visible()
    assert_accessible(page, "the player, playing")

    expect(page.locator("#player-state")).to_have_text("Completed")
    assert_accessible(page, "the player, ended")


def test_a_listeners_page_has_no_serious_violations(visitor_page, rest, tmp_path):
    page = visitor_page
    media = upload(rest, recording(tmp_path, 3.0, "axe-listener.flac"))
    session = create_session(rest, media["id"])
    open_page(page, f"/?session={session['id']}")
    expect(page.locator("#player-connection")).to_have_text("Connected: audio and subtitles")
    assert_accessible(page, "a listener's page")


def test_the_sign_in_page_has_no_serious_violations(visitor_page):
    page = visitor_page
    page.goto("/sign-in")
    expect(page.get_by_label("User name")).to_be_visible()
    assert_accessible(page, "the sign-in page")

    page.get_by_label("User name").fill("nobody")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".notice.error")).to_be_visible()
    assert_accessible(page, "the sign-in page, refused")
