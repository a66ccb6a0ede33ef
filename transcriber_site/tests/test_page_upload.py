"""The upload tab: progress to 100 %, drag and drop, every server error sentence, delete."""

from __future__ import annotations

import base64
import re

import pytest
from playwright.sync_api import expect

from media_app.audio import read_audio
from transcriber_site.testing import DEMO_PATH, tone, write_audio, write_video_with_audio
from transcriber_site.tests.conftest import UPLOAD_LIMIT_MB, create_session, open_page, recording, upload

pytestmark = pytest.mark.slow

RECORD_PROGRESS = """() => {
    window.uploadProgress = [];
    new MutationObserver(() => window.uploadProgress.push(Number(document.getElementById("upload-bar").value)))
        .observe(document.getElementById("upload-bar"), {attributes: true, attributeFilter: ["value"]});
}"""


def test_an_upload_shows_progress_to_100_percent_and_is_selected_in_create(page, tmp_path):
    speech = write_audio(tmp_path / "speech.wav", read_audio(DEMO_PATH)[: 16000 * 8])  # 44.1 kHz stereo: 1.4 MB
    open_page(page, "/#upload")
    page.evaluate(RECORD_PROGRESS)

    with page.expect_response("**/api/media/upload") as answer:
        with page.expect_file_chooser() as chooser:
            page.get_by_text("Choose a file").click()
        chooser.value.set_files(speech)
    media = answer.value.json()

    expect(page.locator("#upload-done")).to_contain_text(
        re.compile(r"speech\.wav \(wav, 0:08, 1\.\d MB\) is in the library")
    )
    expect(page.locator("#upload-percent")).to_have_text("100%")
    assert page.locator("#upload-bar").evaluate("bar => bar.value") == 100
    progress = page.evaluate("window.uploadProgress")
    assert progress[-1] == 100 and progress == sorted(progress), progress
    assert re.search(r"\(1\.\d MB at [\d.]+ [KMG]?B/s\)", page.locator("#upload-status").inner_text())
    expect(page.locator(f'#media-rows tr[data-media-id="{media["id"]}"]')).to_contain_text("speech.wav")

    page.get_by_role("tab", name="Create session").click()
    expect(page.locator("#create-media")).to_have_value(str(media["id"]))
    expect(page.locator("#create-media option:checked")).to_have_text("speech.wav (0:08)")


def test_a_file_dropped_on_the_drop_zone_is_uploaded(page, tmp_path):
    data = recording(tmp_path, 1.0, "dropped.flac").read_bytes()
    open_page(page, "/#upload")

    with page.expect_response("**/api/media/upload") as answer:
        page.evaluate(
            """([name, b64]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], name, {type: "audio/flac"}));
                const zone = document.getElementById("upload-drop");
                for (const type of ["dragenter", "dragover", "drop"]) {
                    zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
                }
            }""",
            ["dropped.flac", base64.b64encode(data).decode()],
        )
    assert answer.value.status == 201
    expect(page.locator("#upload-done")).to_contain_text("dropped.flac")
    expect(page.locator("#upload-percent")).to_have_text("100%")


def _bad_files(tmp_path):
    """(file name, content, status, the start of the server's sentence)."""
    whole = write_audio(tmp_path / "long.wav", tone(6.0)).read_bytes()
    mute = write_video_with_audio(tmp_path / "mute.mp4", tone(1.0), with_audio=False).read_bytes()
    big = write_audio(tmp_path / "big.wav", tone(25.0)).read_bytes()  # 44.1 kHz stereo: 4.4 MB
    return [
        ("silence.wav", b"", 400, "'silence.wav' is empty."),
        ("notes.mp3", b"This is a text file, not a recording.\n" * 50, 415, "'notes.mp3' is not an audio or video"),
        ("report.pdf", whole, 415, "Unsupported file type '.pdf'. Accepted types: aac, avi, flac"),
        ("long.wav", whole[: len(whole) // 2], 422, "'long.wav' is truncated: it declares 6.0 s of audio"),
        ("mute.mp4", mute, 422, "'mute.mp4' has no audio track."),
        ("big.wav", big, 413, f"The upload is larger than the {UPLOAD_LIMIT_MB} MB limit (MAX_UPLOAD_SIZE_MB)."),
    ]


def test_each_bad_upload_shows_the_servers_sentence(page, console, tmp_path):
    open_page(page, "/#upload")
    for name, content, status, sentence in _bad_files(tmp_path):
        console.expect_http_error(status, "/api/media/upload")
        with page.expect_response("**/api/media/upload") as answer:
            page.locator("#upload-file").set_input_files(
                {"name": name, "mimeType": "application/octet-stream", "buffer": content}
            )
        assert answer.value.status == status
        error = answer.value.json()["error"]
        assert error.startswith(sentence)

        expect(page.locator("#upload-error")).to_have_text(error)
        expect(page.locator("#upload-error")).to_have_attribute("role", "alert")
        expect(page.locator("#upload-done")).to_be_hidden()
    assert console.expected_http == [], "the browser did not log every error answer"
    expect(page.locator("#media-rows tr", has_text="silence.wav")).to_have_count(0)


def test_a_recording_is_deleted_after_a_second_click_and_one_in_use_is_not(page, console, rest, tmp_path):
    spare = upload(rest, recording(tmp_path, 1.0, "spare.flac"))
    playing = upload(rest, recording(tmp_path, 4.0, "playing.flac"))
    session = create_session(rest, playing["id"])
    open_page(page, "/#upload")

    row = page.locator(f'#media-rows tr[data-media-id="{spare["id"]}"]')
    row.get_by_role("button", name="Delete spare.flac").click()
    expect(row).to_be_visible()  # the first click only asks
    row.get_by_role("button", name="Really delete spare.flac?").click()
    expect(row).to_have_count(0)
    assert spare["id"] not in [m["id"] for m in rest.get("/api/media").json()]
    expect(page.locator("#create-media option", has_text="spare.flac")).to_have_count(0)

    console.expect_http_error(409, f"/api/media/{playing['id']}")
    row = page.locator(f'#media-rows tr[data-media-id="{playing["id"]}"]')
    with page.expect_response(f"**/api/media/{playing['id']}") as answer:
        row.get_by_role("button", name="Delete playing.flac").click()
        row.get_by_role("button", name="Really delete playing.flac?").click()
    assert answer.value.status == 409
    expect(page.locator("#media-error")).to_have_text(answer.value.json()["error"])
    expect(row).to_be_visible()
    rest.delete(f"/api/sessions/{session['id']}")
