"""GET /api/models tells the truth about each model."""

from __future__ import annotations

from models_app.registry import registry


def test_the_list_has_the_three_models_with_their_state(client, settings, tmp_path):
    settings.TDT_MODEL_PATH = tmp_path / "tdt"
    settings.CANARY_MODEL_PATH = tmp_path / "canary"
    registry.loaded("whisper")

    models = {m["id"]: m for m in client.get("/api/models").json()}

    assert list(models) == ["parakeet-tdt", "canary-1b", "whisper"]
    for model in models.values():
        assert set(model) >= {"id", "display_name", "description", "languages", "available", "loaded"}
    assert models["whisper"]["available"] is True
    assert models["whisper"]["loaded"] is True
    assert models["whisper"]["memory_mb"] >= 0
    assert models["whisper"]["provider"] == "ctranslate2 cpu (int8)"
    assert models["parakeet-tdt"]["available"] is False
    assert models["parakeet-tdt"]["loaded"] is False
    assert "download_model parakeet-tdt" in models["parakeet-tdt"]["unavailable_reason"]
    assert models["canary-1b"]["translates"] is True
    assert len(models["canary-1b"]["languages"]) == 25


def test_post_is_not_allowed(client):
    response = client.post("/api/models")

    assert response.status_code == 405
    assert response.json() == {"error": "POST is not allowed here; use GET."}
