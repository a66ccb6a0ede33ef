"""Browser fixtures: Debian's chromium, driven by Playwright, against the real server.

No browser is downloaded (`playwright install` is never run): Playwright launches the
chromium that `make test` installs from Debian. Every page records its console; a test
fails on any error there or any uncaught exception, except the HTTP error responses the
test itself provoked (Chromium logs each 4xx/5xx answer to fetch or XHR as
"Failed to load resource", whatever the page does with it).

`page` is an operator's browser (signed in through the server's token link), `listener_page`
an anonymous visitor's, in a browser context of its own; `rest` calls the API with the
operator's token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import (
    APIRequestContext,
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

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
    """The REST API, called from the test (not from the page), as the server's operator."""
    context = operator_api(playwright, server)
    yield context
    context.dispose()


def operator_api(playwright: Playwright, server: LiveServer) -> APIRequestContext:
    """One connection per request: a kept-alive one, idle for the server's 5 s keep-alive, can be
    closed by the server just as a POST reuses it (ECONNRESET, and a POST is not retried)."""
    return playwright.request.new_context(
        base_url=server.url, extra_http_headers={"Authorization": f"Bearer {server.token}", "Connection": "close"}
    )


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
def console(server: LiveServer) -> Iterator[Console]:
    """What the test's pages (operator's and listener's) log; none of it may be an error."""
    console = Console(server.url)
    yield console
    assert console.errors == [], "the page logged errors:\n" + "\n".join(console.errors)


@pytest.fixture
def page(browser: Browser, server: LiveServer, console: Console) -> Iterator[Page]:
    """An operator's browser: signed in (its session cookie) before the test opens anything."""
    with browser_context(browser, server.url) as context:
        sign_in(context, server.token)
        yield new_page(context, console)


@pytest.fixture
def listener_page(browser: Browser, server: LiveServer, console: Console) -> Iterator[Page]:
    """A visitor with no account, in a browser context (cookies, storage) of its own."""
    with browser_context(browser, server.url) as context:
        yield new_page(context, console)


@contextmanager
def browser_context(browser: Browser, base_url: str) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base_url, accept_downloads=True)
    try:
        yield context
    finally:
        context.close()


def sign_in(context: BrowserContext, token: str) -> None:
    """The sign-in link (`/?token=`), followed by the context's own request API: its cookies are the browser's."""
    response = context.request.get(f"/?token={token}")
    assert response.ok, response.status
    assert "sessionid" in {cookie["name"] for cookie in context.cookies()}, "the sign-in link set no session cookie"


def new_page(context: BrowserContext, console: Console) -> Page:
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    return page


@contextmanager
def operator_and_listener(browser: Browser, server: LiveServer) -> Iterator[tuple[Page, Page, Console]]:
    """An operator's page (signed in) and a visitor's, on a server of the test's own; neither may log an error."""
    console = Console(server.url)
    with browser_context(browser, server.url) as signed_in, browser_context(browser, server.url) as anonymous:
        sign_in(signed_in, server.token)
        yield new_page(signed_in, console), new_page(anonymous, console), console
    assert console.errors == [], "the pages logged errors:\n" + "\n".join(console.errors)


def open_page(page: Page, path: str = "/") -> Page:
    """Load the page and wait until it has its configuration, models and media."""
    page.goto(path)
    page.wait_for_selector("body[data-ready=true]", state="attached")
    return page


# How many audio packets the page's WebRTC peer has received.
PACKETS = """async () => {
    const pc = window.app.player.audio.pc;
    if (!pc) return 0;
    let packets = 0;
    (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") packets = s.packetsReceived; });
    return packets;
}"""


def packets_received(page: Page) -> int:
    return int(page.evaluate(PACKETS))


def wait_for_packets_beyond(page: Page, count: int) -> None:
    page.wait_for_function(f"(async () => ({PACKETS})() > {count})")


def expect_audio_playing(page: Page) -> None:
    """The player's audio element plays, and more audio keeps arriving over WebRTC."""
    page.wait_for_function(
        "() => { const a = document.getElementById('player-audio');"
        " return a.srcObject !== null && !a.paused && a.currentTime > 0.2; }"
    )
    wait_for_packets_beyond(page, packets_received(page) + 20)  # 20 Opus packets: 0.4 s more of audio


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
