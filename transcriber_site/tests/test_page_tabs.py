"""The page's shell: three tabs, usable with the keyboard, at phone width, all from our own origin."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from transcriber_site.tests.conftest import open_page

pytestmark = pytest.mark.slow

TABS = ["browse", "create", "upload"]


def test_the_page_loads_everything_from_its_own_server(page, server):
    requested = []
    page.on("request", lambda request: requested.append(request.url))

    open_page(page)

    assert requested, "the page made no requests"
    foreign = [url for url in requested if not url.startswith((server.url, "data:"))]
    assert foreign == []
    assert any(url.endswith("/static/js/app.js") for url in requested)
    assert any(url.endswith("/static/css/app.css") for url in requested)


def test_the_tabs_switch_by_click_and_by_keyboard_and_the_hash_names_the_open_one(page):
    open_page(page)
    expect(page.get_by_role("tab", name="Browse sessions")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-browse")).to_be_visible()

    page.get_by_role("tab", name="Create session").click()
    expect(page.locator("#panel-create")).to_be_visible()
    expect(page.locator("#panel-browse")).to_be_hidden()
    assert page.evaluate("location.hash") == "#create"

    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Upload media")).to_be_focused()
    expect(page.locator("#panel-upload")).to_be_visible()
    page.keyboard.press("ArrowRight")  # wraps around
    expect(page.get_by_role("tab", name="Browse sessions")).to_be_focused()
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Upload media")).to_have_attribute("aria-selected", "true")
    # only the selected tab is in the tab order; Tab moves into its panel
    assert page.eval_on_selector_all('[role="tab"]', "tabs => tabs.map(t => t.tabIndex)") == [-1, -1, 0]
    page.keyboard.press("Tab")
    expect(page.locator("#panel-upload")).to_be_focused()

    open_page(page, "/#create")
    expect(page.locator("#panel-create")).to_be_visible()


def test_every_tab_fits_a_phone_screen(page):
    page.set_viewport_size({"width": 360, "height": 740})
    open_page(page)
    for name in TABS:
        page.locator(f"#tab-{name}").click()
        expect(page.locator(f"#panel-{name}")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"the {name} tab is {width} px wide at a 360 px viewport"
