"""What an operator meets in the first hour: short model lines, a quiet live line before speech,
one listener count, one size, a Play button that does what it says, whole transcript lines,
and a Browse card whose time stays on one line."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import numpy as np
import pytest
from playwright.sync_api import APIResponse, Locator, Page, Route, expect

from media_app.audio import read_audio
from transcriber_site.testing import DEMO_PATH, write_audio
from transcriber_site.tests.conftest import create_session, expect_audio_playing, open_page, recording, upload

pytestmark = pytest.mark.slow

DARK_BAR = "rgb(28, 35, 48)"  # the live line's background while it holds words


def human_size(n: int) -> str:
    """format.js's bytes(): what the page writes for a size."""
    value, unit = float(n), 0
    units = ["B", "KB", "MB", "GB"]
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.{0 if unit == 0 or value >= 100 else 1}f} {units[unit]}"


def test_each_unavailable_model_is_one_short_line_with_how_to_get_it_behind_a_disclosure(page, rest):
    unavailable = [m for m in rest.get("/api/models").json() if not m["available"]]
    assert len(unavailable) >= 2  # Parakeet and Canary have no weights on the test server
    open_page(page, "/#create")

    lines = page.locator("#create-unavailable > li")
    expect(lines).to_have_count(len(unavailable))
    for model, line in zip(unavailable, lines.all(), strict=True):
        summary = line.locator("summary")
        expect(summary).to_have_text(f"{model['display_name']}: not installed — how to get it")
        how = line.locator("p")
        expect(how).to_be_hidden()
        box = summary.bounding_box()
        assert box is not None and box["height"] < 30, box  # one line at 1280 px, not a paragraph
        summary.click()
        expect(how).to_be_visible()
        commands = re.findall(r"`([^`]+)`", model["unavailable_reason"])
        assert commands, model["unavailable_reason"]
        expect(how.locator("code")).to_have_text(commands)  # `backticked` as code
        assert "`" not in how.inner_text()
    assert "`" not in page.locator("#panel-create").inner_text()


def test_the_live_line_is_a_quiet_placeholder_until_the_first_words(page, rest, tmp_path):
    speech = read_audio(DEMO_PATH)[: 16000 * 3]
    quiet_first = np.concatenate([np.zeros(16000 * 5, np.float32), speech])  # 5 s of silence, then words
    media = upload(rest, write_audio(tmp_path / "quiet-first.flac", quiet_first, channels=1))
    session = create_session(rest, media["id"])
    open_page(page, f"/?session={session['id']}")
    partial = page.locator("#subtitle-partial")

    expect(page.locator("#player-connection")).to_have_text("Connected: audio and subtitles")
    expect(page.locator("#subtitle-finals .segment")).to_have_count(0)  # still in the silence
    expect(partial).to_be_visible()
    expect(partial).to_have_text("")
    assert partial.evaluate("p => getComputedStyle(p).backgroundColor") != DARK_BAR  # no empty black bar
    assert partial.evaluate("p => getComputedStyle(p, '::before').content") == '"Waiting for speech…"'

    expect(page.locator("#subtitle-partial .partial-text, #subtitle-finals .segment").first).to_be_attached()
    if partial.locator(".partial-text").count():  # words on the line: the dark subtitle bar
        assert partial.evaluate("p => getComputedStyle(p).backgroundColor") == DARK_BAR
    assert partial.evaluate("p => getComputedStyle(p, '::before').content") == "none"

    expect(page.locator("#player-state")).to_have_text("Completed")
    expect(partial).to_be_hidden()  # an ended session has no live line


def shown_counts(page: Page, card: Locator) -> tuple[int | None, int | None]:
    """(the player's "N listening", the card's Listeners), None where one shows no number.

    The card may be on a tab not shown now: what counts is whether its Listeners fact is hidden.
    """
    said = re.search(r"(\d+) listening", page.locator("#player-sub").inner_text())
    shown = card.locator('[data-field="listeners"]').evaluate("dd => dd.parentElement.hidden ? null : dd.textContent")
    return (int(said.group(1)) if said else None, int(shown) if shown is not None else None)


def test_the_player_and_the_browse_card_say_the_same_listener_count(page, listener_page, rest, tmp_path):
    media = upload(rest, recording(tmp_path, 6.0, "counted.flac"))
    open_page(page)
    page.wait_for_function("() => window.app.sessions.subscribed && window.app.sessions.loaded")
    page.get_by_role("tab", name="Create session").click()
    held: list[tuple[Route, APIResponse]] = []

    def answer_the_list_late(route: Route) -> None:
        # the list fetch that Start sends is answered as it was then, but delivered after the join's count
        if route.request.method == "GET" and urlparse(route.request.url).path == "/api/sessions" and not held:
            held.append((route, route.fetch()))
        else:
            route.fallback()

    page.route("**/api/sessions", answer_the_list_late)
    page.locator("#create-media").select_option(str(media["id"]))
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/api/sessions")) as made:
        page.get_by_role("button", name="Start").click()
    session = made.value.json()
    card = page.locator(f'#sessions-list li[data-session-id="{session["id"]}"]')
    listeners = card.locator('[data-field="listeners"]')

    expect(page.locator("#player-sub")).to_contain_text("1 listening")  # the player's own socket
    expect(listeners).to_have_text("1")
    assert held, "the page sent no list fetch when the session started"
    route, response = held[0]
    stale = {s["id"]: s["client_count"] for s in response.json()}
    assert stale[session["id"]] == 0  # asked for before the player joined
    route.fulfill(response=response)
    page.wait_for_function("() => !window.app.sessions.loading")
    assert shown_counts(page, card) == (1, 1)  # the older answer does not undo the newer count

    open_page(listener_page, f"/?session={session['id']}")
    expect(listeners).to_have_text("2")
    expect(page.locator("#player-sub")).to_contain_text("2 listening")
    assert shown_counts(page, card) == (2, 2)
    listener_page.close()
    expect(listeners).to_have_text("1")
    assert shown_counts(page, card) == (1, 1)

    expect(page.locator("#player-state")).to_have_text("Completed")
    page.wait_for_function("() => window.app.player.socket === null")  # its socket has gone: nobody listens
    expect(listeners).to_have_text("0")
    assert shown_counts(page, card) == (None, None)  # an ended session shows no count, in either place


def test_an_mp3_shows_its_own_size_format_and_duration_in_the_message_and_the_library(page, tmp_path):
    mp3 = write_audio(tmp_path / "talk.mp3", read_audio(DEMO_PATH)[: 16000 * 6])
    size = human_size(mp3.stat().st_size)
    open_page(page, "/#upload")

    with page.expect_response("**/api/media/upload") as answer:
        page.locator("#upload-file").set_input_files(mp3)
    media = answer.value.json()
    assert human_size(media["size_bytes"]) != size  # the stored wav is another size: not the one to show

    expect(page.locator("#upload-done")).to_have_text(
        f"talk.mp3 (mp3, 0:06, {size}) is in the library and selected in Create session."
    )
    expect(page.locator("#upload-status")).to_contain_text(f"Uploaded talk.mp3 ({size} at")
    row = page.locator(f'#media-rows tr[data-media-id="{media["id"]}"]')
    expect(row.locator("td")).to_have_text(["0:06", size, "mp3", "Delete"])


# play() starts the audio at once but settles only when the test says so: the moment autoplay is under way
HOLD_PLAY = """
window.playCalls = 0;
const play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () {
    const started = play.call(this);
    window.playCalls += 1;
    return new Promise((resolve, reject) => { window.settlePlay = () => started.then(resolve, reject); });
};
"""


def test_a_click_as_the_audio_starts_does_not_pause_it_and_the_button_says_what_a_click_does(page, rest, tmp_path):
    media = upload(rest, recording(tmp_path, 8.0, "autoplay.flac"))
    session = create_session(rest, media["id"])
    page.add_init_script(HOLD_PLAY)
    open_page(page, f"/?session={session['id']}")
    button = page.locator("#player-play")
    audio = page.locator("#player-audio")

    page.wait_for_function("() => window.playCalls === 1")  # the track came: autoplay is starting
    expect(button).to_have_text("Pause audio")  # what a click will do once it has started
    button.click(force=True)  # the listener clicks just then
    page.evaluate("window.settlePlay()")
    expect(button).not_to_have_attribute("aria-disabled", "true")
    assert not audio.evaluate("a => a.paused"), "the click as autoplay started paused the audio"
    expect(button).to_have_text("Pause audio")
    expect_audio_playing(page)

    button.click()
    expect(button).to_have_text("Play audio")  # the click paused it: the next one plays
    assert audio.evaluate("a => a.paused")
    button.click()
    page.evaluate("window.settlePlay()")
    expect(button).to_have_text("Pause audio")
    page.wait_for_function("() => !document.getElementById('player-audio').paused")


# After each line (and after a whole transcript loads), no line straddles the transcript's top edge.
CUT_LINES = """async () => {
    document.getElementById("player").hidden = false;
    const { Subtitles } = await import("/static/js/subtitles.js");
    const subtitles = new Subtitles(() => 1000);
    const scroller = document.getElementById("subtitle-scroller");
    const cut = () => {
        const top = scroller.getBoundingClientRect().top + scroller.clientTop;
        return [...document.querySelectorAll("#subtitle-finals li")].filter((li) => {
            const box = li.getBoundingClientRect();
            return box.top < top - 0.5 && box.bottom > top + 0.5;
        }).length;
    };
    const words = "the end of a session scrolls its transcript to the newest line".split(" ");
    const text = (i) => words.slice(0, 2 + (i * 7) % words.length).join(" ") + ".";
    const seen = { cut: [], atEnd: [] };
    for (let i = 0; i < 30; i++) {
        subtitles.add({ text: text(i), start: i, end: i + 0.9, is_final: true, index: i, cue: i });
        seen.cut.push(cut());
        seen.atEnd.push(scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 2);
    }
    seen.overflows = scroller.scrollHeight > scroller.clientHeight;
    subtitles.load(Array.from({ length: 40 }, (_, i) => ({ text: text(i + 3), start: i, end: i + 0.9 })));
    seen.loadedCut = cut();
    return seen;
}"""


def test_the_transcript_scrolled_to_its_end_shows_its_top_line_whole(page):
    open_page(page)

    seen = page.evaluate(CUT_LINES)

    assert seen["overflows"]
    assert all(seen["atEnd"]), seen["atEnd"]  # it still follows the newest line
    assert seen["cut"] == [0] * 30, seen["cut"]
    assert seen["loadedCut"] == 0


def test_a_cards_created_time_stays_on_one_line_at_desktop_width(page, rest, tmp_path):
    media = upload(rest, recording(tmp_path, 1.0, "a-rather-long-recording-name.flac"))
    session = create_session(rest, media["id"])
    open_page(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    card = page.locator(f'#sessions-list li[data-session-id="{session["id"]}"]')
    expect(card.locator('[data-field="state"]')).to_have_text("Completed")  # the widest badge
    # and a card of a session with a four-digit id, as a busy server has
    page.evaluate(
        "s => window.app.sessions.place({ ...s, id: 4821, created_at: '2026-12-01T05:47:00Z' })",
        rest.get(f"/api/sessions/{session['id']}").json(),
    )

    for sub in page.locator("#sessions-list .card-sub").all():
        expect(sub).to_contain_text("created")
        lines = sub.evaluate(
            """p => { const range = document.createRange(); range.selectNodeContents(p);
                      return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size; }"""
        )
        assert lines == 1, sub.inner_text()
