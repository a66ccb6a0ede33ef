from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def media_dir(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    """Every test gets its own empty MEDIA_DIR; nothing touches the repository's media/."""
    directory = tmp_path / "media"
    directory.mkdir()
    settings.MEDIA_DIR = directory
    settings.MEDIA_ROOT = directory
    return directory
