"""The README's screenshots: the three tabs and a playing session, taken from the real page.

    .venv/bin/python docs/screenshots.py

Starts the real server (`manage.py serve`) on a temporary database and media folder,
drives Debian's chromium with Playwright as the browser tests do, and writes
docs/screenshots/{browse,create,upload,player}.png.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import Page, expect, sync_playwright

from transcriber_site.testing import LiveServer
from transcriber_site.tests.conftest import create_session, launch, open_page, operator_api, recording, sign_in, upload

OUT = Path(__file__).resolve().parent / "screenshots"
VIEWPORT = {"width": 1100, "height": 760}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, LiveServer(Path(tmp)) as server, sync_playwright() as playwright:
        root = Path(tmp)
        rest = operator_api(playwright, server)
        browser = launch(playwright)
        context = browser.new_context(viewport=VIEWPORT, base_url=server.url, reduced_motion="reduce")
        sign_in(context, server.token)  # the operator's page: every tab, and the player's session buttons

        # a finished session and two recordings in the library
        earlier = upload(rest, recording(root, 3.0, "standup-excerpt.flac"))
        finished = create_session(rest, earlier["id"], preset="low_latency")
        upload(rest, recording(root, 12.8, "welcome-talk.flac"))

        page = context.new_page()
        open_page(page, "/#upload")
        page.locator("#upload-file").set_input_files(recording(root, 6.0, "interview.wav"))
        expect(page.locator("#upload-done")).to_be_visible()
        shot(page, "upload")

        page.get_by_role("tab", name="Create session").click()
        page.locator("#create-media").select_option(label="welcome-talk.flac (0:12)")
        shot(page, "create")

        page.get_by_role("button", name="Start").click()
        expect(page.locator("#player-connection")).to_have_text("Connected: audio and subtitles")

        browse = context.new_page()
        open_page(browse)
        card = browse.locator(f'[data-session-id="{finished["id"]}"] [data-field="state"]')
        expect(card).to_have_text("Completed", timeout=20_000)
        expect(browse.locator('[data-field="listeners"]', has_text="1")).to_be_visible()
        browse.wait_for_function("() => [...document.querySelectorAll('progress')].some(p => p.value > 3)")
        shot(browse, "browse")

        expect(page.locator("#subtitle-finals")).to_contain_text("colleagues", timeout=20_000)
        page.locator("#player").screenshot(path=OUT / "player.png")
        browser.close()
        rest.dispose()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=OUT / f"{name}.png", full_page=True)


if __name__ == "__main__":
    main()
