"""Operators and listeners on the page: who sees which controls, signing in and out, share links."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Playwright, expect

from transcriber_site.testing import LiveServer
from transcriber_site.tests.conftest import (
    browser_context,
    create_session,
    expect_audio_playing,
    new_page,
    open_page,
    operator_and_listener,
    operator_api,
    recording,
    upload,
)

pytestmark = pytest.mark.slow

# What only an operator's page has: a listener's has none of it in its DOM, not even hidden.
OPERATOR_ONLY = [
    "#tab-create",
    "#tab-upload",
    "#panel-create",
    "#panel-upload",
    "#media-missing",
    "#player-pause",
    "#player-resume",
    "#player-stop",
    "#player-share",
]


@pytest.fixture(scope="module")
def link_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Sessions are not listed to visitors, and joined through their share links."""
    with LiveServer(tmp_path_factory.mktemp("link-server"), env={"LISTEN_ACCESS": "link"}) as live:
        yield live


@pytest.fixture(scope="module")
def operators_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Listening needs a sign-in."""
    with LiveServer(tmp_path_factory.mktemp("operators-server"), env={"LISTEN_ACCESS": "operators"}) as live:
        yield live


def test_an_operator_signs_in_by_link_starts_a_session_and_a_listener_joins_hears_and_reads_it(
    browser, server, console, listener_page, tmp_path
):
    with browser_context(browser, server.url) as context:
        operator = new_page(context, console)
        operator.goto(f"/?token={server.token}")
        expect(operator).to_have_url(f"{server.url}/")  # signed in, and the token is gone from the address bar
        operator.wait_for_selector("body[data-ready=true]", state="attached")
        expect(operator.locator("body")).to_have_attribute("data-operator", "true")
        expect(operator.locator(".signed-in")).to_contain_text("Signed in as")

        # upload and start from the page: its POSTs carry the CSRF token
        operator.get_by_role("tab", name="Upload media").click()
        with operator.expect_response("**/api/media/upload") as uploaded:
            operator.locator("#upload-file").set_input_files(recording(tmp_path, 6.0, "for-everyone.flac"))
        assert uploaded.value.status == 201, uploaded.value.text()
        operator.get_by_role("tab", name="Create session").click()
        expect(operator.locator("#create-media option:checked")).to_contain_text("for-everyone.flac")
        with operator.expect_response("**/api/sessions") as created:
            operator.get_by_role("button", name="Start").click()
        assert created.value.status == 201, created.value.text()
        session = created.value.json()
        expect(operator.locator("#player-connection")).to_have_text("Connected: audio and subtitles")
        expect(operator.locator("#player-share-url")).to_have_value(f"{server.url}{session['share_url']}")
        for selector in OPERATOR_ONLY:
            expect(operator.locator(selector)).to_have_count(1)

        listener = open_page(listener_page)
        expect(listener.locator("body")).to_have_attribute("data-operator", "false")
        card = listener.locator(f'#sessions-list li[data-session-id="{session["id"]}"]')
        card.get_by_role("button", name=f"Join session {session['id']}: for-everyone.flac").click()
        expect(listener.locator("#player-connection")).to_have_text("Connected: audio and subtitles")
        expect_audio_playing(listener)
        expect(listener.locator("#subtitle-finals")).to_contain_text("welcome", ignore_case=True)
        expect(operator.locator("#player-sub")).to_contain_text("2 listening")

        for selector in OPERATOR_ONLY:
            expect(listener.locator(selector)).to_have_count(0)
        expect(listener.get_by_role("tab")).to_have_text(["Browse sessions"])
        expect(
            listener.get_by_role("button", name=re.compile(r"(Pause|Resume|Stop) session|Delete|Copy"))
        ).to_have_count(0)
        assert "share_url" not in listener.request.get(f"/api/sessions/{session['id']}").json()

        # the operator's Stop reaches the listener
        operator.get_by_role("button", name="Stop session").click()
        expect(listener.locator("#player-state")).to_have_text("Stopped")
        expect(operator.locator("#player-state")).to_have_text("Stopped")


def test_a_visitor_is_offered_a_sign_in_and_a_signed_in_operator_signs_out(page, listener_page):
    open_page(listener_page)
    expect(listener_page.get_by_role("button", name="Sign out")).to_have_count(0)
    listener_page.get_by_role("link", name="Sign in").click()
    expect(listener_page).to_have_url(re.compile(r"/sign-in\?next=%2F$"))  # back to the page after it

    open_page(page)
    expect(page.locator(".signed-in")).to_contain_text("Signed in as")
    expect(page.get_by_role("link", name="Sign in")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()

    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    page.wait_for_selector("body[data-ready=true]", state="attached")
    expect(page.locator("body")).to_have_attribute("data-operator", "false")
    for selector in OPERATOR_ONLY:
        expect(page.locator(selector)).to_have_count(0)


def test_with_link_access_visitors_see_no_list_and_the_operators_share_link_plays(
    browser, playwright: Playwright, link_server, tmp_path
):
    rest = operator_api(playwright, link_server)
    media = upload(rest, recording(tmp_path, 7.0, "invited.flac"))
    session = create_session(rest, media["id"])
    rest.dispose()

    with operator_and_listener(browser, link_server) as (operator, listener, console):
        open_page(operator, f"/?session={session['id']}")
        share = operator.locator("#player-share-url")
        expect(share).to_have_value(re.compile(rf"^{re.escape(link_server.url)}/\?session={session['id']}&key=\S+$"))
        share_url = share.input_value()
        operator.get_by_role("button", name="Copy share link").click()  # copied, or selected to copy by hand
        expect(operator.locator("#player-share-note")).not_to_be_empty()

        listener.goto(share_url)
        listener.wait_for_selector("body[data-ready=true]", state="attached")
        expect(listener.locator("#player-connection")).to_have_text("Connected: audio and subtitles")
        expect_audio_playing(listener)
        expect(listener.locator("#subtitle-finals")).to_contain_text("welcome", ignore_case=True)
        assert listener.url == share_url  # the address stays the share link
        srt = listener.get_by_role("link", name="SRT")
        expect(srt).to_have_attribute("href", re.compile(r"&key=\S+$"))
        with listener.expect_download() as download:
            srt.click()
        assert "welcome" in Path(download.value.path()).read_text().lower()

        open_page(listener, "/")
        expect(listener.locator("#sessions-empty")).to_contain_text("This server does not list its sessions")
        expect(listener.locator("#sessions-list li")).to_have_count(0)
        open_page(operator, "/")
        expect(operator.locator(f'#sessions-list li[data-session-id="{session["id"]}"]')).to_be_visible()

        console.expect_http_error(404, f"/api/sessions/{session['id']}")
        open_page(listener, f"/?session={session['id']}")  # without the key the session is not there
        expect(listener.locator("#player-error")).not_to_be_empty()
        expect(listener.locator("#player-connection")).to_have_text("Not connected")
        assert console.expected_http == []


def test_with_operators_access_a_visitor_is_told_to_sign_in_and_the_page_stops_asking(browser, operators_server):
    with operator_and_listener(browser, operators_server) as (operator, listener, console):
        console.expect_http_error(401, "/api/sessions")
        open_page(listener)
        error = listener.locator("#sessions-error")
        expect(error).to_have_text("Sign in to listen: this server's sessions are for operators only. Sign in")
        expect(error.get_by_role("link", name="Sign in")).to_have_attribute("href", "/sign-in?next=%2F")
        assert listener.evaluate("window.app.sessions.timer") is None  # no refresh while it would be refused again
        assert console.expected_http == []

        open_page(operator)
        expect(operator.locator("#sessions-error")).to_be_hidden()
        expect(operator.locator("#sessions-empty")).to_be_visible()
