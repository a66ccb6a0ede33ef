"""The browse tab hears session changes over /ws/sessions: it fetches the list once, not every few seconds."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, Request, WebSocketRoute, expect

from transcriber_site.tests.conftest import create_session, open_page, recording, upload

pytestmark = pytest.mark.slow


def list_fetches(page: Page) -> list[str]:
    """Every GET /api/sessions the page sends from now on."""
    fetched: list[str] = []

    def seen(request: Request) -> None:
        if request.method == "GET" and urlparse(request.url).path == "/api/sessions":
            fetched.append(request.url)

    page.on("request", seen)
    return fetched


def test_cards_follow_creation_states_and_listeners_without_fetching_the_list(page, listener_page, rest, tmp_path):
    media = upload(rest, recording(tmp_path, 8.0, "pushed.flac"))
    open_page(page)
    page.wait_for_function("() => window.app.sessions.subscribed && window.app.sessions.loaded")
    fetched = list_fetches(page)

    session = create_session(rest, media["id"])
    card = page.locator(f'#sessions-list li[data-session-id="{session["id"]}"]')
    expect(card.locator('[data-field="media"]')).to_have_text("pushed.flac")
    expect(card).to_have_js_property("previousElementSibling", None)  # newest first
    state = card.locator('[data-field="state"]')
    expect(state).to_have_text("Live")
    page.wait_for_function("bar => bar.value > 0.5", arg=card.locator("progress").element_handle())

    assert rest.post(f"/api/sessions/{session['id']}/pause").ok
    expect(state).to_have_text("Paused")
    open_page(listener_page, f"/?session={session['id']}")  # a visitor joins it
    expect(card.locator('[data-field="listeners"]')).to_have_text("1")
    assert rest.post(f"/api/sessions/{session['id']}/resume").ok
    expect(state).to_have_text("Live")
    assert rest.delete(f"/api/sessions/{session['id']}").ok
    expect(state).to_have_text("Stopped")
    expect(card.locator('[data-field="note"]')).to_have_text("Stopped by an operator.")
    listener_page.close()
    expect(card.locator('[data-field="listeners"]')).to_have_text("0")

    assert fetched == []  # every change came over the feed


def test_without_its_feed_the_tab_still_lists_and_falls_back_to_fetching(page, rest, tmp_path):
    media = upload(rest, recording(tmp_path, 1.0, "unfed.flac"))
    session = create_session(rest, media["id"])

    def refuse(ws: WebSocketRoute) -> None:
        ws.close(code=1011, reason="down for the test")

    page.route_web_socket("**/ws/sessions", refuse)
    open_page(page)

    expect(page.locator(f'#sessions-list li[data-session-id="{session["id"]}"]')).to_be_visible()
    # the fallback's next fetch is planned once the list fetch in flight has answered: wait for it, not assume it
    page.wait_for_function("() => !window.app.sessions.subscribed && window.app.sessions.timer !== null")
