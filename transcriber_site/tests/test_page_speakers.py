"""Speakers on the page: labels in each speaker's colour, the session's names for them, the
operator's renaming from the player, and the Create tab's "Tell speakers apart".

Some tests play the server's part on the session's socket (the page's own REST call and
WebSocket are answered by the test), so that every speaker and name is the test's choice;
the rest run a real server whose diarizer is a scripted model that hears one speaker.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, Route, WebSocketRoute, expect

from models_app.tests.sortformer_graphs import plan_from_turns, write_sortformer
from transcriber_site.testing import LiveServer
from transcriber_site.tests.conftest import (
    open_page,
    operator_and_listener,
    operator_api,
    recording,
    upload,
)

pytestmark = pytest.mark.slow

SESSION_ID = 9001  # the played session's: no real session has it
SESSION = {
    "id": SESSION_ID,
    "model_id": "whisper",
    "model_name": "Whisper",
    "media_filename": "panel.flac",
    "state": "running",
    "source": "recording",
    "live_input": False,
    "client_count": 1,
    "duration_secs": 600.0,
    "progress_secs": 0.0,
    "language": "en",
    "preset": "balanced",
    "diarize": True,
    "speaker_names": {},
    "transcripts": ["live"],
    # no started_at and no server_time: the page has no playout estimate and shows subtitles at once
    "clock": {"state": "running", "started_at": None, "paused_secs": 0, "duration_secs": 600.0},
}


def play_session(page: Page, **changes: object) -> WebSocketRoute:
    """Open the page on a session the test plays: its REST answer and its socket, which has sent session_info."""
    session = {**SESSION, **changes}
    sockets: list[WebSocketRoute] = []

    def answer(route: Route) -> None:
        route.fulfill(json=session)

    def accept(ws: WebSocketRoute) -> None:  # not connected to the server: the test is the server
        sockets.append(ws)
        ws.send(json.dumps({"type": "session_info", "session": session}))

    page.route(f"**/api/sessions/{SESSION_ID}", answer)
    page.route_web_socket(re.compile(rf"/ws/{SESSION_ID}$"), accept)
    open_page(page, f"/?session={SESSION_ID}")
    page.wait_for_function("() => window.app.player.joined")
    assert len(sockets) == 1
    return sockets[0]


def say(socket: WebSocketRoute, text: str, start: float, speaker: int | None, index: int | None = None) -> None:
    """A final (with its index, one cue each) or, without an index, the partial."""
    event = {"type": "subtitle", "text": text, "start": start, "end": start + 1.0, "speaker": speaker}
    if index is None:
        event["is_final"] = False
    else:
        event |= {"is_final": True, "index": index, "cue": index}
    socket.send(json.dumps(event))


def labels(page: Page) -> list[str]:
    return page.locator("#subtitle-finals li .speaker").all_inner_texts()


def colour(page: Page, selector: str, prop: str = "color") -> str:
    return page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}")


def test_finals_and_the_partial_carry_each_speakers_label_in_their_own_colour(page):
    socket = play_session(page)

    say(socket, " Good evening.", 1.0, 0, index=0)
    say(socket, " Thank you.", 3.0, 1, index=1)
    say(socket, " Applause.", 5.0, None, index=2)
    say(socket, " And now", 7.0, 1)

    lines = page.locator("#subtitle-finals li")
    expect(lines).to_have_count(3)
    expect(lines.nth(2)).to_contain_text("Applause.")
    assert labels(page) == ["Speaker 1", "Speaker 2"]
    assert [lines.nth(i).get_attribute("data-speaker") for i in range(3)] == ["0", "1", None]
    expect(lines.nth(2).locator(".speaker")).to_have_count(0)  # no speaker known: no label
    first, second = (
        colour(page, "#subtitle-finals li:nth-child(1) .speaker"),
        colour(page, "#subtitle-finals li:nth-child(2) .speaker"),
    )
    assert first != second
    assert colour(page, "#subtitle-finals li:nth-child(1)", "borderLeftColor") == first

    partial = page.locator("#subtitle-partial")
    expect(partial.locator(".speaker")).to_have_text("Speaker 2")
    expect(partial.locator(".partial-text")).to_have_text("And now")
    expect(partial).to_have_attribute("data-speaker", "1")
    assert colour(page, "#subtitle-partial .speaker", "backgroundColor") == second
    assert colour(page, "#subtitle-partial", "borderLeftColor") == second

    say(socket, " Then", 9.0, 0)
    expect(partial.locator(".speaker")).to_have_text("Speaker 1")
    assert colour(page, "#subtitle-partial .speaker", "backgroundColor") == first
    say(socket, " hm", 9.5, None)  # the partial's speaker is not known yet: no label, no colour
    expect(partial.locator(".partial-text")).to_have_text("hm")
    expect(partial.locator(".speaker")).to_have_count(0)
    expect(partial).not_to_have_attribute("data-speaker", re.compile(".*"))


def test_the_sessions_names_label_its_speakers_and_a_speakers_message_relabels_every_line(page):
    socket = play_session(page, speaker_names={"0": "Diane"})

    say(socket, " Welcome.", 1.0, 0, index=0)
    say(socket, " Thanks.", 2.0, 1, index=1)
    say(socket, " Glad to", 3.0, 0, index=2)
    say(socket, " be here", 4.0, 1)
    expect(page.locator("#subtitle-finals li")).to_have_count(3)
    assert labels(page) == ["Diane", "Speaker 2", "Diane"]
    expect(page.locator("#subtitle-partial .speaker")).to_have_text("Speaker 2")
    # an operator's labels are buttons that say what they do
    expect(page.get_by_role("button", name="Rename Diane")).to_have_count(2)
    expect(page.get_by_role("button", name="Rename Speaker 2")).to_have_count(1)

    # the full map of names: Diane's is gone, Marco's is new
    socket.send(json.dumps({"type": "speakers", "names": {"1": "Marco"}}))
    expect(page.locator("#subtitle-partial .speaker")).to_have_text("Marco")
    assert labels(page) == ["Speaker 1", "Marco", "Speaker 1"]
    expect(page.get_by_role("button", name="Rename Marco")).to_have_count(1)
    expect(page.get_by_role("button", name="Rename Diane")).to_have_count(0)

    say(socket, " Indeed.", 5.0, 1, index=3)  # a line that comes later has the new name too
    expect(page.locator("#subtitle-finals li").nth(3).locator(".speaker")).to_have_text("Marco")


def test_a_listener_reads_the_labels_but_has_nothing_to_rename_them_with(listener_page):
    socket = play_session(listener_page, speaker_names={"1": "Marco"})

    say(socket, " Hello.", 1.0, 1, index=0)
    say(socket, " Hi.", 2.0, 0, index=1)
    expect(listener_page.locator("#subtitle-finals li")).to_have_count(2)
    assert labels(listener_page) == ["Marco", "Speaker 1"]
    assert listener_page.eval_on_selector_all("#subtitle-finals .speaker", "s => s.map((e) => e.tagName)") == [
        "SPAN",
        "SPAN",
    ]
    expect(listener_page.get_by_role("button", name=re.compile("Rename"))).to_have_count(0)
    expect(listener_page.locator("#speaker-rename")).to_have_count(0)

    socket.send(json.dumps({"type": "speakers", "names": {"0": "Diane", "1": "Marco"}}))
    expect(listener_page.locator("#subtitle-finals li").nth(1).locator(".speaker")).to_have_text("Diane")


def test_a_session_that_does_not_tell_speakers_apart_shows_nothing_of_them(page):
    socket = play_session(page, diarize=False)

    say(socket, " No speakers here.", 1.0, 0, index=0)
    say(socket, " nor here", 2.0, 1)
    expect(page.locator("#subtitle-finals li")).to_have_count(1)
    expect(page.locator("#subtitle-partial")).to_have_text("nor here")
    expect(page.locator("#subtitle-finals .speaker, #subtitle-partial .speaker")).to_have_count(0)
    expect(page.locator("#subtitle-finals li[data-speaker], #subtitle-partial[data-speaker]")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Rename"))).to_have_count(0)


def test_without_the_speaker_model_the_checkbox_is_disabled_and_says_why(page, rest):
    diarization = rest.get("/api/models").json()[0]["diarization"]
    assert diarization["available"] is False
    reason = diarization["unavailable_reason"]
    commands = re.findall(r"`([^`]+)`", reason)
    assert commands, reason  # the server's reason names the command to run, in backticks
    open_page(page, "/#create")

    box = page.get_by_role("checkbox", name="Tell speakers apart")
    expect(box).to_be_disabled()
    expect(box).not_to_be_checked()
    summary = page.locator("#create-diarize-missing summary")
    expect(summary).to_have_text("Speaker diarization is not installed")
    expect(box).to_have_accessible_description("Speaker diarization is not installed")
    details = page.locator("#create-diarize-reason")
    expect(details).to_be_hidden()  # one line; the reason is a click away
    summary.click()
    expect(details).to_be_visible()
    expect(details.locator("code")).to_have_text(commands)
    assert "`" not in details.inner_text()
    expect(page.locator("#create-diarize-help")).to_be_hidden()


# --- a real server that tells speakers apart -----------------------------------------------------


@pytest.fixture(scope="module")
def speaker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with a speaker model: a scripted Sortformer that hears speaker 0 for 100 s."""
    root = tmp_path_factory.mktemp("speaker-server")
    write_sortformer(root / "sortformer", plan_from_turns([(0, 100, 0)], 100), left_context=1)
    with LiveServer(root, env={"DIAR_MODEL_PATH": str(root / "sortformer")}) as live:
        yield live


def stored_names(server: LiveServer, session_id: int) -> dict[str, str]:
    """The session's speaker_names as the server's database holds them."""
    with sqlite3.connect(server.root / "db.sqlite3") as db:
        row = db.execute("SELECT speaker_names FROM sessions_app_transcriptionsession WHERE id = ?", (session_id,))
        return json.loads(row.fetchone()[0])


def test_the_operator_renames_a_speaker_and_a_listener_sees_the_new_name_at_once(
    browser, playwright, speaker_server, tmp_path: Path
):
    rest = operator_api(playwright, speaker_server)
    media = upload(rest, recording(tmp_path, 12.0, "interview.flac"))
    with operator_and_listener(browser, speaker_server) as (operator, listener, console):
        open_page(operator, "/#create")
        box = operator.get_by_role("checkbox", name="Tell speakers apart")
        expect(box).to_be_enabled()
        expect(box).to_be_checked()
        expect(operator.locator("#create-diarize-missing")).to_be_hidden()
        operator.locator("#create-media").select_option(str(media["id"]))
        with operator.expect_request("**/api/sessions") as sent, operator.expect_response("**/api/sessions") as made:
            operator.get_by_role("button", name="Start").click()
        assert json.loads(sent.value.post_data or "{}")["diarize"] is True
        session = made.value.json()
        assert session["diarize"] is True, session

        rename = operator.get_by_role("button", name="Rename Speaker 1").first
        expect(rename).to_be_visible()
        open_page(listener, f"/?session={session['id']}")
        expect(listener.locator("#subtitle-finals .speaker").first).to_have_text("Speaker 1")
        listener.evaluate("window.notReloaded = true")
        # paused, the session stays live (and its sockets open) however long the renaming takes
        operator.get_by_role("button", name="Pause session").click()
        expect(operator.locator("#player-state")).to_have_text("Paused")

        patches: list[Request] = []

        def note(request: Request) -> None:
            if request.method == "PATCH":
                patches.append(request)

        operator.on("request", note)
        rename.click()
        name = operator.get_by_label("Name for Speaker 1")
        expect(name).to_be_focused()
        expect(name).to_have_value("Speaker 1")
        name.fill("Nobody")
        name.press("Escape")  # cancels: nothing is sent, the label keeps its name
        expect(name).to_be_hidden()
        expect(rename).to_be_focused()
        expect(rename).to_have_text("Speaker 1")

        rename.click()
        expect(name).to_have_value("Speaker 1")
        name.fill("Diane")
        with operator.expect_response(f"**/api/sessions/{session['id']}") as renamed:
            name.press("Enter")
        assert renamed.value.request.method == "PATCH"
        assert json.loads(renamed.value.request.post_data or "{}") == {"speaker_names": {"0": "Diane"}}
        assert renamed.value.status == 200, renamed.value.text()
        assert [request.method for request in patches] == ["PATCH"]  # the Escape sent nothing
        assert stored_names(speaker_server, session["id"]) == {"0": "Diane"}

        expect(name).to_be_hidden()
        renamed_button = operator.get_by_role("button", name="Rename Diane").first
        expect(renamed_button).to_be_focused()
        assert set(operator.locator("#subtitle-finals .speaker").all_inner_texts()) == {"Diane"}
        expect(operator.get_by_role("button", name="Rename Speaker 1")).to_have_count(0)
        # the listener's page had the new name pushed to it: the same page, not reloaded
        expect(listener.locator("#subtitle-finals .speaker").first).to_have_text("Diane")
        assert set(listener.locator("#subtitle-finals .speaker").all_inner_texts()) == {"Diane"}
        assert listener.evaluate("window.notReloaded") is True

        # a name the server refuses: its sentence is shown next to the field, the name stays
        renamed_button.click()
        expect(name).to_have_value("Diane")
        name.fill("D" * 41)
        console.expect_http_error(400, f"/api/sessions/{session['id']}")
        with operator.expect_response(f"**/api/sessions/{session['id']}") as refused:
            operator.get_by_role("button", name="Save").click()
        assert refused.value.status == 400
        error = refused.value.json()["error"]
        assert "40 characters" in error, error
        expect(operator.locator("#speaker-rename-error")).to_have_text(error)
        expect(name).to_have_attribute("aria-invalid", "true")
        expect(name).to_be_focused()
        assert stored_names(speaker_server, session["id"]) == {"0": "Diane"}
        expect(operator.locator("#subtitle-finals .speaker").first).to_have_text("Diane")

        assert rest.delete(f"/api/sessions/{session['id']}").ok
    rest.dispose()
