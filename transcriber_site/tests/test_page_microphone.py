"""Going live from the page: Chromium's fake microphone says the demo recording, the page sends it.

The browser gets its own launch here: Chromium's fake capture device plays a wav file
(`--use-file-for-fake-audio-capture`, looped) as the microphone, and the fake UI allows it.
An aiortc listener, in a thread of its own (Playwright's sync API holds this thread's event
loop), hears the session and reads it.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from media_app.audio import read_audio
from transcriber_site.testing import DEMO_PATH, AudioListener, LiveServer
from transcriber_site.tests.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Console,
    browser_context,
    new_page,
    open_page,
    sign_in,
)

pytestmark = pytest.mark.slow

RATE = 16000
ON_AIR = "On air: listeners hear your microphone."
# words of the demo recording; the fake microphone loops it from wherever it was when the session started
WORDS = re.compile(r"\b(session|colleagues|recording|welcome)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def microphone_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium whose microphone says the demo recording (over and over)."""
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={DEMO_PATH}"]
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
    yield browser
    browser.close()


@pytest.fixture
def operator_page(microphone_browser: Browser, server: LiveServer, console: Console) -> Iterator[Page]:
    with browser_context(microphone_browser, server.url) as context:
        sign_in(context, server.token)
        yield new_page(context, console)


class ListenerThread(threading.Thread):
    """An AudioListener on the session, in its own thread and event loop, until `stop` is set."""

    def __init__(self, url: str, session_id: int) -> None:
        super().__init__(daemon=True)
        self.url, self.session_id = url, session_id
        self.stop = threading.Event()
        self.listener: AudioListener | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._listen())
        except BaseException as exc:
            self.error = exc

    async def _listen(self) -> None:
        async with AudioListener(self.url, self.session_id) as listener:
            self.listener = listener
            await listener.start_audio()
            await asyncio.to_thread(self.stop.wait)

    def heard(self) -> np.ndarray:
        assert self.listener is not None
        return np.concatenate([s[::3] for _, _, s in list(self.listener.audio)])  # 48 -> 16 kHz

    def finals(self) -> list[dict[str, Any]]:
        assert self.listener is not None
        return list(self.listener.finals())


def best_correlation(heard: np.ndarray, said: np.ndarray) -> float:
    """The normalised cross-correlation of `said` where it best matches `heard` (by FFT: both are long)."""
    size = 1 << (len(heard) + len(said)).bit_length()
    scores = np.fft.irfft(np.fft.rfft(heard, size) * np.conj(np.fft.rfft(said, size)), size)[
        : len(heard) - len(said) + 1
    ]
    power = np.concatenate([[0.0], np.cumsum(heard.astype(np.float64) ** 2)])
    energy = np.sqrt(np.maximum(power[len(said) :] - power[: -len(said)], 0.0) * np.sum(said.astype(np.float64) ** 2))
    return float(np.max(scores / np.maximum(energy, 1e-9)))


def session_id_of(page: Page) -> int:
    page.wait_for_function("() => window.app?.player?.session?.id > 0")
    return int(page.evaluate("() => window.app.player.session.id"))


def test_an_operator_goes_live_from_the_page_and_a_listener_hears_and_reads_it(operator_page: Page, server):
    page = open_page(operator_page, "/#create")
    page.get_by_role("radio", name="Microphone").check()
    # the level meter moves with the fake microphone's speech
    page.wait_for_function("() => Number(document.getElementById('create-mic-level').dataset.level) > 0.2")
    expect(page.locator("#create-mic-status")).to_contain_text("Listening to")

    went_live = time.monotonic()
    page.get_by_role("button", name="Go live").click()
    session_id = session_id_of(page)
    listener = ListenerThread(server.url, session_id)
    listener.start()
    try:
        expect(page.locator("#player-mic-status")).to_have_text(ON_AIR, timeout=30_000)
        page.wait_for_function("() => Number(document.getElementById('player-mic-level').dataset.level) > 0.2")
        # the operator reads their own words, and does not hear them back
        expect(page.locator("#subtitle-finals")).to_contain_text(WORDS, timeout=30_000)
        on_screen = time.monotonic() - went_live
        delay = page.locator("#player-delay").inner_text()  # the page's own speech-to-screen median
        assert page.evaluate("() => document.getElementById('player-audio').muted") is True
        deadline = time.monotonic() + 20
        while not any(WORDS.search(m["text"]) for m in listener.finals()):
            assert listener.error is None and time.monotonic() < deadline, "the listener read none of the words"
            time.sleep(0.2)

        # the socket drops: the page reconnects and sends the microphone again, to the same session
        page.evaluate("() => window.app.player.socket.socket.close()")
        expect(page.locator("#player-mic-status")).not_to_have_text(ON_AIR)
        expect(page.locator("#player-mic-status")).to_have_text(ON_AIR)
        # the page is reloaded: it offers to send the microphone again
        page.reload()
        page.get_by_role("button", name="Send my microphone").click()
        expect(page.locator("#player-mic-status")).to_have_text(ON_AIR)
        heard_before = len(listener.finals())
        deadline = time.monotonic() + 20
        while len(listener.finals()) <= heard_before:  # the session goes on
            assert listener.error is None and time.monotonic() < deadline, "no final came after the reload"
            time.sleep(0.2)

        mute = page.get_by_role("button", name="Mute microphone")
        mute.click()
        expect(mute).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#player-mic-status")).to_have_text("Muted: listeners hear silence until you unmute.")
        mute.click()
        expect(page.locator("#player-mic-status")).to_have_text(ON_AIR)

        page.get_by_role("button", name="End", exact=True).click()
        expect(page.locator("#player-state")).to_have_text("Completed", timeout=15_000)
        expect(page.locator("#player-mic-status")).to_have_text(
            "The session's input has ended: your microphone is off."
        )
    finally:
        listener.stop.set()
        listener.join(10)

    assert listener.error is None, listener.error
    # what the listener heard is the microphone's speech (through the browser's processing and two Opus encodings)
    speech = read_audio(DEMO_PATH)
    correlation = max(best_correlation(listener.heard(), speech[at : at + RATE]) for at in range(0, 6 * RATE, RATE))
    print(
        f"page: a final on screen {on_screen:.1f} s after Go live ({delay}); listener's correlation {correlation:.2f}"
    )
    assert correlation > 0.5, correlation


def test_a_refused_microphone_is_said_in_a_sentence(operator_page: Page):
    # as when the operator answers "Block" to the browser's question
    operator_page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"
    )
    page = open_page(operator_page, "/#create")
    page.get_by_role("radio", name="Microphone").check()

    expect(page.locator("#create-error")).to_have_text(
        "The browser was not allowed to use the microphone: allow it for this site (the icon in the address bar), "
        "then press Allow microphone."
    )
    expect(page.get_by_role("button", name="Allow microphone")).to_be_visible()
    page.get_by_role("button", name="Go live").click()  # asks again, and says so again: no session is made
    expect(page.locator("#create-error")).to_contain_text("was not allowed to use the microphone")
    expect(page.locator("#player")).to_be_hidden()


def test_a_stream_url_is_sent_as_a_stream_source_and_the_servers_refusal_is_shown(operator_page: Page, console):
    # the Create tab's third source; the server refuses its own network (STREAM_ALLOW_PRIVATE is off)
    page = open_page(operator_page, "/#create")
    page.get_by_role("radio", name="Stream URL").check()
    expect(page.locator("#create-media")).to_be_hidden()
    expect(page.get_by_role("button", name="Start")).to_be_disabled()  # no URL yet
    page.get_by_role("textbox", name="Stream address").fill("http://127.0.0.1:9/live.mp3")

    console.expect_http_error(400, "/api/sessions")
    with page.expect_request("**/api/sessions") as sent, page.expect_response("**/api/sessions") as answer:
        page.get_by_role("button", name="Start").click()
    assert json.loads(sent.value.post_data or "{}") == {
        "model_id": "whisper",
        "source": "stream",
        "url": "http://127.0.0.1:9/live.mp3",
        "language": "en",
        "preset": "balanced",
    }
    assert answer.value.status == 400
    expect(page.locator("#create-error")).to_have_text(answer.value.json()["error"])
    expect(page.locator("#player")).to_be_hidden()
