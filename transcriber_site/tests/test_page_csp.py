"""The page and the admin work under the Content-Security-Policy: nothing is blocked."""

from __future__ import annotations

import subprocess
import sys

import pytest
from playwright.sync_api import expect

from transcriber_site.testing import BASE_DIR
from transcriber_site.tests.conftest import create_session, open_page, recording, upload

pytestmark = pytest.mark.slow

# Every `securitypolicyviolation` event the document sees, from its first script on.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) =>
    window.cspViolations.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`));
"""


def test_a_session_plays_audio_and_subtitles_under_the_policy(page, rest, tmp_path):
    page.add_init_script(RECORD_VIOLATIONS)
    media = upload(rest, recording(tmp_path, 4.0, "csp.flac"))
    session = create_session(rest, media["id"])

    response = page.goto(f"/?session={session['id']}")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector("body[data-ready=true]", state="attached")
    expect(page.locator("#player-connection")).to_have_text("Connected: audio and subtitles")  # the WebSocket
    page.wait_for_function(
        "() => { const a = document.getElementById('player-audio');"
        " return a.srcObject !== null && !a.paused && a.currentTime > 1.0; }"  # a second of audio
    )
    open_page(page, "/#upload")  # and every tab's markup, styles and scripts
    for tab in ("Browse sessions", "Create session", "Upload media"):
        page.get_by_role("tab", name=tab).click()

    assert page.evaluate("window.cspViolations") == []


def test_the_admin_logs_in_and_lists_under_the_policy(listener_page, server, console):
    page = listener_page  # not signed in yet: the admin's own login page signs in
    env = {**server.env, "DJANGO_SUPERUSER_PASSWORD": "csp-test-pw"}
    command = [sys.executable, str(BASE_DIR / "manage.py"), "createsuperuser", "--noinput"]
    subprocess.run([*command, "--username", "csp-admin", "--email", "a@example.org"], env=env, cwd=BASE_DIR, check=True)
    page.add_init_script(RECORD_VIOLATIONS)
    console.expect_http_error(404, "/favicon.ico")  # the admin names no icon, so the browser asks for one

    page.goto("/admin/login/")
    page.get_by_label("Username").fill("csp-admin")
    page.get_by_label("Password").fill("csp-test-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#site-name")).to_be_visible()
    assert page.evaluate("window.cspViolations") == []

    lists = page.eval_on_selector_all("#content-main th[scope=row] a", "links => links.map((a) => a.href)")
    assert lists, "the admin index lists no models"
    for href in lists:  # each list, with its actions bar and filters
        page.goto(href)
        expect(page.locator("#content")).to_be_visible()
        assert page.evaluate("window.cspViolations") == [], href
    page.goto("/admin/auth/user/add/")  # a form, with the admin's form scripts
    expect(page.get_by_label("Username")).to_be_visible()
    assert page.evaluate("window.cspViolations") == []
