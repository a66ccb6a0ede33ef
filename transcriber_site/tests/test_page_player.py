"""The player: audio over WebRTC, subtitles in time with it, pause and resume, downloads, reconnects."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from transcriber_site.tests.conftest import (
    create_session,
    expect_audio_playing,
    open_page,
    recording,
    upload,
)

pytestmark = pytest.mark.slow

# Every final or partial the page shows, with the listener's playout position at that moment.
WATCH_SUBTITLES = """() => {
    window.shown = [];
    const note = (kind, start) =>
        window.shown.push({kind, start: Number(start), playout: window.app.player.clock.lastPlayout});
    new MutationObserver((records) => {
        for (const record of records)
            for (const node of record.addedNodes)
                if (node.nodeType === 1)
                    for (const segment of [node, ...node.querySelectorAll(".segment")])
                        if (segment.classList.contains("segment")) note("final", segment.dataset.start);
    }).observe(document.getElementById("subtitle-finals"), {childList: true, subtree: true});
    const partial = document.getElementById("subtitle-partial");
    new MutationObserver(() => partial.textContent && note("partial", partial.dataset.start))
        .observe(partial, {childList: true, characterData: true, subtree: true});
}"""


def test_start_joins_at_once_and_the_listener_hears_the_audio_and_reads_the_words_in_time(page, rest, tmp_path):
    media = upload(rest, recording(tmp_path, 7.0, "listen.flac"))
    open_page(page, "/#create")
    page.evaluate(WATCH_SUBTITLES)
    page.locator("#create-media").select_option(str(media["id"]))

    with page.expect_response("**/api/sessions") as created:
        page.get_by_role("button", name="Start").click()
    session = created.value.json()

    expect(page.locator("#player")).to_be_visible()
    expect(page.locator("#player-title")).to_have_text("listen.flac")
    expect(page.locator("#player-title")).to_be_focused()
    assert page.evaluate("location.search") == f"?session={session['id']}"
    expect(page.locator("#player-connection")).to_have_text("Connected: audio and subtitles")
    expect(page.locator("#player-sub")).to_contain_text("1 listening")
    expect_audio_playing(page)

    audio = page.locator("#player-audio")
    page.get_by_role("button", name="Pause audio").click()
    expect(page.get_by_role("button", name="Play audio")).to_be_visible()
    assert audio.evaluate("a => a.paused")
    page.get_by_role("button", name="Play audio").press("Enter")
    page.wait_for_function("() => !document.getElementById('player-audio').paused")
    mute = page.get_by_role("button", name="Mute")
    mute.click()
    expect(mute).to_have_attribute("aria-pressed", "true")
    assert audio.evaluate("a => a.muted")
    mute.press("Space")
    expect(mute).to_have_attribute("aria-pressed", "false")
    page.get_by_label("Volume").press("ArrowLeft")
    page.get_by_label("Volume").press("ArrowLeft")
    assert audio.evaluate("a => a.volume") == pytest.approx(0.9)

    finals = page.locator("#subtitle-finals")
    expect(finals).to_contain_text("welcome", ignore_case=True)
    # the page's playout estimate follows the server's clock (less the audio's delay)
    gap = page.evaluate(
        f"""async () => {{
            const {{progress_secs, state}} = await (await fetch("/api/sessions/{session["id"]}")).json();
            return state === "running" ? progress_secs - window.app.player.playout() : null;
        }}"""
    )
    assert gap is None or -0.1 < gap < 0.6, gap

    # the transcript can be downloaded while the session runs
    with page.expect_download() as download:
        page.get_by_role("link", name="SRT").click()
    assert download.value.suggested_filename == f"session-{session['id']}-listen-live.srt"
    srt = Path(download.value.path()).read_text()
    assert srt.startswith("1\n00:00:")
    assert "welcome" in srt.lower()

    expect(finals).to_contain_text("transcription", ignore_case=True)
    expect(page.locator("#player-state")).to_have_text("Completed")
    expect(page.locator("#player-connection")).to_have_text("Ended")
    expect(finals).to_contain_text("session", ignore_case=True)

    shown = page.evaluate("window.shown")
    assert [s for s in shown if s["kind"] == "final"], shown
    early = [s for s in shown if s["playout"] < s["start"] - 0.01]
    assert early == [], f"shown before the listener's audio reached them: {early}"
    delay = float(page.locator("#player-delay").get_attribute("data-seconds") or "nan")
    assert 0 < delay < 3, delay
    expect(page.locator("#player-delay")).to_contain_text(re.compile(r"Speech-to-screen delay: \d\.\d\d s \(median"))

    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def test_subtitles_wait_until_the_listeners_audio_reaches_their_start(page):
    open_page(page)

    result = page.evaluate(
        """async () => {
            const { Subtitles } = await import("/static/js/subtitles.js");
            let position = 4.0;
            const subtitles = new Subtitles(() => position);
            const finals = document.getElementById("subtitle-finals");
            const partial = document.getElementById("subtitle-partial");
            const seen = {};
            subtitles.add({ text: "hello there", start: 5.0, end: 5.8, is_final: true, index: 0 });
            subtitles.add({ text: "and th", start: 5.8, end: 6.1, is_final: false });
            subtitles.add({ text: "and then", start: 5.8, end: 6.4, is_final: false });  // replaces the waiting one
            seen.at4 = [finals.textContent, partial.textContent];
            position = 5.0; subtitles.tick();
            seen.at5 = [finals.textContent, partial.textContent];
            position = 5.9; subtitles.tick();
            seen.at59 = [finals.textContent, partial.textContent];
            subtitles.add({ text: "hello there", start: 5.0, end: 5.8, is_final: true, index: 0 });  // replayed
            subtitles.add({ text: "", start: 6.5, end: 6.5, is_final: false });  // clears at once
            seen.replayed = [finals.querySelectorAll(".segment").length, partial.textContent];
            seen.delay = subtitles.medianDelay;
            return seen;
        }"""
    )

    assert result["at4"] == ["", ""]
    assert result["at5"][0].endswith("hello there") and result["at5"][1] == ""
    assert result["at59"][1] == "and then"
    assert result["replayed"] == [1, ""]
    assert result["delay"] == pytest.approx(5.0 - 5.8)  # shown at 5.0, before the phrase ended at 5.8


def test_finals_of_one_cue_grow_one_line_and_the_loaded_transcript_has_the_same_lines(page):
    open_page(page)

    live, loaded = page.evaluate(
        """async () => {
            const { Subtitles } = await import("/static/js/subtitles.js");
            const subtitles = new Subtitles(() => null);
            const lines = () => [...document.querySelectorAll("#subtitle-finals li")].map(
                (li) => [li.querySelector(".timestamp").textContent, li.querySelector(".text").textContent]);
            const final = (index, cue, text, start) =>
                subtitles.add({ text, start, end: start + 0.5, is_final: true, index, cue });
            final(0, 0, " It was", 61.0);
            final(1, 0, " the best", 62.0);
            final(2, 0, ".", 62.5);  // punctuation joins without a space
            final(3, 1, " Next", 63.0);
            const live = lines();
            // a finished session's transcript (?format=json): one object per cue
            subtitles.load([{ text: "It was the best.", start: 61.0, end: 63.0 }, { text: "Next", start: 63.0, end: 63.5 }]);
            return [live, lines()];
        }"""
    )

    assert [text for _, text in live] == ["It was the best.", "Next"]
    assert live == loaded  # the same lines, each stamped with its cue's start


def test_the_transcript_follows_the_newest_line_until_the_reader_scrolls_up_and_colours_speakers(page):
    open_page(page)

    result = page.evaluate(
        """async () => {
            document.getElementById("player").hidden = false;
            const { Subtitles } = await import("/static/js/subtitles.js");
            const subtitles = new Subtitles(() => 1000);
            const scroller = document.getElementById("subtitle-scroller");
            const jump = document.getElementById("subtitle-jump");
            const atBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 2;
            const say = (index, speaker) => subtitles.add({
                text: `Sentence number ${index}.`, start: index, end: index + 0.9, is_final: true, index, speaker });
            for (let i = 0; i < 30; i++) say(i, i < 20 ? 0 : 1);
            const seen = { followed: atBottom(), overflows: scroller.scrollHeight > scroller.clientHeight };
            scroller.scrollTop = 0;
            await new Promise((resolve) => scroller.addEventListener("scroll", resolve, { once: true }));
            say(30, 1);
            seen.stayed = scroller.scrollTop === 0 && !atBottom();
            seen.jumpShown = !jump.hidden;
            jump.click();
            seen.backAtBottom = atBottom() && jump.hidden;
            const last = document.querySelector("#subtitle-finals li:last-child");
            seen.lastLine = [last.dataset.speaker, last.querySelector(".speaker").textContent,
                             getComputedStyle(last.querySelector(".speaker")).color];
            const first = document.querySelector("#subtitle-finals li");
            seen.firstColour = getComputedStyle(first.querySelector(".speaker")).color;
            return seen;
        }"""
    )

    assert result["overflows"] and result["followed"]
    assert result["stayed"] and result["jumpShown"]
    assert result["backAtBottom"]
    speaker, label, colour = result["lastLine"]
    assert (speaker, label) == ("1", "Speaker 2")
    assert colour != result["firstColour"]


def test_the_operator_pauses_and_resumes_the_session_from_the_player(page, rest, tmp_path):
    media = upload(rest, recording(tmp_path, 6.0, "pause-me.flac"))
    session = create_session(rest, media["id"])
    open_page(page, f"/?session={session['id']}")  # a link to the session joins it
    expect(page.locator("#player-connection")).to_have_text("Connected: audio and subtitles")
    page.wait_for_function("() => window.app.player.playout() > 1.5")

    page.get_by_role("button", name="Pause session").click()
    expect(page.locator("#player-state")).to_have_text("Paused")
    expect(page.get_by_role("button", name="Resume session")).to_be_visible()
    assert rest.get(f"/api/sessions/{session['id']}").json()["state"] == "paused"
    # the position stands still: wait for three more status messages, then compare
    paused_at = page.evaluate("window.app.player.playout()")
    page.evaluate(
        """() => { window.statuses = 0;
            window.app.player.socket.addEventListener("message", (e) => { if (e.detail.type === "status") window.statuses++; }); }"""
    )
    page.wait_for_function("() => window.statuses >= 3")
    assert page.evaluate("window.app.player.playout()") == pytest.approx(paused_at, abs=0.05)
    assert rest.get(f"/api/sessions/{session['id']}").json()["progress_secs"] < 6.0

    page.get_by_role("button", name="Resume session").click()
    expect(page.locator("#player-state")).to_have_text("Live")
    page.wait_for_function(f"() => window.app.player.playout() > {paused_at + 0.5}")
    expect(page.locator("#player-state")).to_have_text("Completed")
    expect(page.locator("#subtitle-finals")).to_contain_text("session", ignore_case=True)
    assert rest.get(f"/api/sessions/{session['id']}").json()["clock"]["paused_secs"] > 0


def test_after_the_socket_is_cut_the_player_reconnects_and_resumes_the_session(page, rest, tmp_path):
    media = upload(rest, recording(tmp_path, 8.0, "cut.flac"))
    sockets = []

    def through_the_test(ws):
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket(re.compile(r"/ws/\d+$"), through_the_test)
    session = create_session(rest, media["id"])
    open_page(page, f"/?session={session['id']}")
    page.evaluate(
        """() => { window.indicator = [];
            const el = document.getElementById("player-connection");
            new MutationObserver(() => window.indicator.push(el.textContent.trim()))
                .observe(el, {childList: true, characterData: true, subtree: true}); }"""
    )
    expect(page.locator("#player-connection")).to_have_text("Connected: audio and subtitles")
    expect(page.locator("#subtitle-finals")).to_contain_text("welcome", ignore_case=True)
    expect_audio_playing(page)
    first_peer = page.evaluate_handle("window.app.player.audio.pc")

    sockets[0].close(code=4000, reason="cut by the test")

    expect(page.locator("#player-connection")).to_have_text("Connected: audio and subtitles")
    assert len(sockets) == 2
    indicator = page.evaluate("window.indicator")
    assert any(text.startswith("Connection lost; reconnecting in") for text in indicator), indicator
    assert page.evaluate("old => old !== window.app.player.audio.pc && old.connectionState === 'closed'", first_peer)
    expect_audio_playing(page)  # a new peer, renegotiated, with its own packets

    expect(page.locator("#player-state")).to_have_text("Completed")
    indexes = page.eval_on_selector_all("#subtitle-finals .segment", "s => s.map(e => Number(e.dataset.index))")
    assert indexes == list(range(len(indexes))), "the replayed transcript has gaps or duplicates"
    transcript = rest.get(f"/api/sessions/{session['id']}/transcript?format=json&version=live").json()
    assert page.locator("#subtitle-finals li").count() == len(transcript)  # one line per cue, as the export has
    expect(page.locator("#subtitle-finals")).to_contain_text("session", ignore_case=True)
