"""The page names the recordings whose file is missing, with a label and a sentence that says what it means."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from transcriber_site.testing import LiveServer
from transcriber_site.tests.conftest import (  # noqa: F401  (fixtures)
    browser,
    console,
    open_page,
    page,
    playwright,
    recording,
    rest,
    upload,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server of its own: its library gets a recording whose file is gone."""
    with LiveServer(tmp_path_factory.mktemp("missing-media")) as live:
        yield live


def test_a_recording_whose_file_is_missing_is_shown_as_such(page, rest, server, tmp_path):  # noqa: F811
    upload(rest, recording(tmp_path, 1.0, "kept.flac"))
    gone = upload(rest, recording(tmp_path, 1.0, "gone.flac"))
    open_page(page)
    expect(page.locator("#media-missing")).to_be_hidden()

    (stored,) = server.media_dir.glob("gone-*.wav")
    stored.unlink()  # as an unmounted disk or a file removed by hand leaves it
    open_page(page)

    notice = page.locator("#media-missing")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("their files are missing from the media directory")
    items = notice.get_by_role("listitem")
    expect(items).to_have_count(1)
    expect(items.first).to_have_text("file missing gone.flac")
    expect(items.first).to_have_attribute("data-media-id", str(gone["id"]))
    # the library table labels it, and Create session does not offer it
    expect(page.locator(f'#media-table tr[data-media-id="{gone["id"]}"] .badge.missing')).to_have_count(1)
    option = page.locator(f'#create-media option[value="{gone["id"]}"]')
    expect(option).to_have_text("gone.flac (0:01) (file missing)")
    expect(option).to_be_disabled()
    expect(page.locator("#create-media")).to_have_value(str(upload_id(rest, "kept.flac")))


def upload_id(rest, filename: str) -> int:  # noqa: F811
    return next(m["id"] for m in rest.get("/api/media").json() if m["filename"] == filename)
