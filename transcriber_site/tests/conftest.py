"""Browser fixtures: Debian's chromium, driven by Playwright, against the real server.

No browser is downloaded (`playwright install` is never run): Playwright launches the
chromium that `make test` installs from Debian. Every page records its console; a test
fails on any error there or any uncaught exception, except the HTTP error responses the
test itself provoked (Chromium logs each 4xx/5xx answer to fetch or XHR as
"Failed to load resource", whatever the page does with it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import APIRequestContext, Browser, ConsoleMessage, Page, Playwright, expect, sync_playwright

from media_app.audio import read_audio
from transcriber_site.testing import DEMO_PATH, LiveServer, write_audio

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    # host candidates as plain addresses, not mDNS names the server would have to resolve
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
# The page tests' server refuses uploads over this, so that a 413 costs a small file.
UPLOAD_LIMIT_MB = 2

# Sessions play in real time: waiting for one of a few seconds to end must not time out.
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)


def launch(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        raise RuntimeError("chromium is not installed: `make test` installs Debian's chromium package")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


# Module scope, not session: Playwright's sync API keeps an event loop running in the thread
# while it is open, which would break the asyncio tests that run after these modules.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = launch(playwright)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server for all page tests (uvicorn, embedded worker, bundled Whisper)."""
    root = tmp_path_factory.mktemp("page-server")
    with LiveServer(root, env={"MAX_UPLOAD_SIZE_MB": str(UPLOAD_LIMIT_MB)}) as live:
        yield live


@pytest.fixture(scope="module")
def rest(playwright: Playwright, server: LiveServer) -> Iterator[APIRequestContext]:
    """The REST API, called from the test (not from the page)."""
    context = playwright.request.new_context(base_url=server.url)
    yield context
    context.dispose()


@dataclass
class Console:
    """What a page logged; `expect_http_error` names the error answers a test provokes."""

    origin: str
    errors: list[str] = field(default_factory=list)
    expected_http: list[tuple[int, str]] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        status = re.match(r"Failed to load resource: the server responded with a status of (\d+)", message.text)
        if status and url.startswith(self.origin):
            key = (int(status.group(1)), urlparse(url).path)
            if key in self.expected_http:
                self.expected_http.remove(key)
                return
        self.errors.append(f"console error: {message.text} ({url})")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")

    def expect_http_error(self, status: int, path: str) -> None:
        self.expected_http.append((status, path))


@pytest.fixture
def console(server: LiveServer) -> Console:
    return Console(server.url)


@pytest.fixture
def page(browser: Browser, server: LiveServer, console: Console) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.url, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    yield page
    context.close()
    assert console.errors == [], "the page logged errors:\n" + "\n".join(console.errors)


def open_page(page: Page, path: str = "/") -> Page:
    """Load the page and wait until it has its configuration, models and media."""
    page.goto(path)
    page.wait_for_selector("body[data-ready=true]", state="attached")
    return page


def recording(directory: Path, seconds: float, name: str = "demo-part.flac") -> Path:
    """The first `seconds` of the demo recording (speech), as a small file to upload."""
    return write_audio(directory / name, read_audio(DEMO_PATH)[: int(16000 * seconds)], channels=1)


def upload(rest: APIRequestContext, path: Path) -> dict:
    response = rest.post(
        "/api/media/upload",
        multipart={"file": {"name": path.name, "mimeType": "application/octet-stream", "buffer": path.read_bytes()}},
    )
    assert response.status == 201, response.text()
    return response.json()


def create_session(rest: APIRequestContext, media_id: int, **fields: object) -> dict:
    response = rest.post("/api/sessions", data={"model_id": "whisper", "media_id": media_id, **fields})
    assert response.status == 201, response.text()
    return response.json()
