"""The README's screenshots: the three tabs and a playing session, taken from the real page, and a short
animated capture of a live session's subtitles.

    .venv/bin/python docs/screenshots.py

Starts the real server (`manage.py serve`) on a temporary database and media folder,
drives Debian's chromium with Playwright as the browser tests do, and writes
docs/screenshots/{browse,create,upload,player}.png and live.webp.

The capture plays the two-voice Endgame recording of the speech set (fetched on first use) through
the bundled Whisper, with speakers: the real Sortformer weights cannot be downloaded on the machines
this is made on, so its speakers come from the scripted diarizer of the tests, which answers the
recording's reference turns (transcriber_site/speech/endgame_nagg_nell.rttm). Everything else is the
real server and page.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import Page, Playwright, expect, sync_playwright

from models_app.engines.sortformer import SETUPS
from models_app.tests.sortformer_graphs import plan_from_turns, write_sortformer
from transcriber_site.speech_set import clip, reference_turns
from transcriber_site.testing import LiveServer, write_audio
from transcriber_site.tests.conftest import create_session, launch, open_page, operator_api, recording, sign_in, upload

OUT = Path(__file__).resolve().parent / "screenshots"
VIEWPORT = {"width": 1100, "height": 760}
CONVERSATION = "endgame_nagg_nell"
CAPTURE_SECS = 14.0  # of the conversation, from its start
CAPTURE_FPS = 4


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        turns = reference_turns(CONVERSATION)
        slots = {who: slot for slot, who in enumerate(dict.fromkeys(who for _, _, who in turns))}
        plan = plan_from_turns([(a, b, slots[who]) for a, b, who in turns], clip(CONVERSATION).seconds)
        diarizer = write_sortformer(root / "sortformer", plan, SETUPS["low"].left).parent
        with LiveServer(root, env={"DIAR_MODEL_PATH": str(diarizer)}) as server, sync_playwright() as playwright:
            take(root, server, playwright)


def take(root: Path, server: LiveServer, playwright: Playwright) -> None:
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

    conversation = upload(rest, write_audio(root / "endgame.flac", clip(CONVERSATION).audio, channels=1))
    live = create_session(rest, conversation["id"], diarize=True)  # it plays from now: open it at once
    open_page(page, f"/?session={live['id']}")
    expect(page.locator("#player-connection")).to_have_text("Connected: audio and subtitles")
    capture(page, "#player .subtitles", OUT / "live.webp")
    browser.close()
    rest.dispose()


def capture(page: Page, selector: str, path: Path) -> None:
    """CAPTURE_SECS of the element's place on the page (where it was when the capture began, so that
    every frame has one size), CAPTURE_FPS frames a second, as an animated WebP (PyAV's libwebp)."""
    element = page.locator(selector)
    element.scroll_into_view_if_needed()
    box = element.bounding_box()
    assert box is not None, f"{selector} is not on the page"
    clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": max(box["height"], 300.0)}
    frames = []
    started = time.monotonic()
    while time.monotonic() - started < CAPTURE_SECS:
        with av.open(io.BytesIO(page.screenshot(clip=clip)), format="png_pipe") as png:  # type: ignore[arg-type]
            frames.append(next(png.decode(video=0)).to_ndarray(format="rgb24"))
        time.sleep(max(started + len(frames) / CAPTURE_FPS - time.monotonic(), 0.0))
    height, width = (min(f.shape[i] for f in frames) // 2 * 2 for i in (0, 1))  # one size for every frame
    with av.open(str(path), "w", format="webp") as out:
        stream = out.add_stream("libwebp_anim", rate=CAPTURE_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for pixels in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels[:height, :width]), format="rgb24")
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def shot(page: Page, name: str) -> None:
    page.screenshot(path=OUT / f"{name}.png", full_page=True)


if __name__ == "__main__":
    main()
