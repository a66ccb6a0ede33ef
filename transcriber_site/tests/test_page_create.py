"""The create tab: models with their availability, languages, translation targets, presets, errors."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from transcriber_site.tests.conftest import open_page, recording, upload

pytestmark = pytest.mark.slow


def test_unavailable_models_are_shown_disabled_with_their_reason(page, rest):
    models = rest.get("/api/models").json()
    unavailable = [m for m in models if not m["available"]]
    assert {m["id"] for m in unavailable} >= {"parakeet-tdt", "canary-1b"}  # no weights on this machine
    open_page(page, "/#create")

    for model in models:
        option = page.locator(f'#create-model option[value="{model["id"]}"]')
        if model["available"]:
            expect(option).to_be_enabled()
        else:
            expect(option).to_be_disabled()
            expect(option).to_have_text(f"{model['display_name']} (unavailable)")
            line = page.locator("#create-unavailable li", has_text=model["display_name"])
            expect(line.locator("summary")).to_have_text(f"{model['display_name']}: not installed — how to get it")
            line.locator("summary").click()  # the server's sentence, its `commands` as code
            how = model["unavailable_reason"].split(": ", 1)[1].replace("`", "")
            expect(line.locator("p")).to_have_text(how[0].upper() + how[1:])
    expect(page.locator("#create-model")).to_have_value("whisper")


def test_whisper_offers_english_and_no_translation(page):
    open_page(page, "/#create")

    expect(page.locator("#create-model")).to_have_value("whisper")
    expect(page.locator("#create-language option")).to_have_text(["English (en)"])
    expect(page.locator("#create-target-field")).to_be_hidden()
    expect(page.locator("#create-preset")).to_have_value("balanced")
    expect(page.locator("#create-preset option")).to_have_text(["low latency", "balanced", "accurate"])


def test_a_translating_model_offers_target_languages_and_the_servers_refusal_is_shown(page, console, rest, tmp_path):
    media = upload(rest, recording(tmp_path, 1.0, "for-canary.flac"))

    def canary_looks_available(route):
        # the page sees Canary as available; the server, which has no weights, still refuses it
        models = route.fetch().json()
        for model in models:
            if model["id"] == "canary-1b":
                model.update(available=True, unavailable_reason=None)
        route.fulfill(json=models)

    page.route("**/api/models", canary_looks_available)
    open_page(page, "/#create")
    page.locator("#create-model").select_option("canary-1b")
    expect(page.locator("#create-target-field")).to_be_visible()
    page.locator("#create-language").select_option("fr")
    targets = page.locator("#create-target option").all_inner_texts()
    assert targets[0] == "No translation"
    assert "German (de)" in targets and "French (fr)" not in targets
    page.locator("#create-target").select_option("de")
    page.locator("#create-media").select_option(str(media["id"]))
    page.locator("#create-preset").select_option("low_latency")

    console.expect_http_error(400, "/api/sessions")
    with page.expect_request("**/api/sessions") as sent, page.expect_response("**/api/sessions") as answer:
        page.locator("#create-start").press("Enter")  # keyboard: Enter on the focused button submits
    assert json.loads(sent.value.post_data or "{}") == {
        "model_id": "canary-1b",
        "media_id": media["id"],
        "language": "fr",
        "target_language": "de",
        "preset": "low_latency",
    }
    assert answer.value.status == 400
    error = answer.value.json()["error"]
    assert error.startswith("The model 'canary-1b' is not available")
    expect(page.locator("#create-error")).to_have_text(error)
    expect(page.locator("#player")).to_be_hidden()
