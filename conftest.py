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


@pytest.fixture(autouse=True)
def no_admission_control(settings) -> None:  # type: ignore[no-untyped-def]
    """Admission follows measured latency, which on a shared test machine says more about the other
    jobs than about the server: tests turn it on where they test it (test_admission.py)."""
    settings.ADMISSION_P95_SECS = 0.0


@pytest.fixture(autouse=True)
def no_diarization(tmp_path: Path, settings):  # type: ignore[no-untyped-def]
    """No speaker model unless a test installs one (a downloaded model does not change what tests see)."""
    from models_app import diarization

    settings.DIAR_MODEL_PATH = str(tmp_path / "no-sortformer")
    diarization.reset_for_tests()
    yield
    diarization.reset_for_tests()


@pytest.fixture
def operator(db):  # type: ignore[no-untyped-def]
    """A user with the operate permission (the `Operators` group), as `create_operator` makes one."""
    from transcriber_site.operators import make_operator

    user, _ = make_operator("operator")
    return user


@pytest.fixture
def operator_client(operator):  # type: ignore[no-untyped-def]
    """Django's test client, signed in (by cookie) as an operator; CSRF is not checked, as for any test client."""
    from django.test import Client

    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def async_operator_client(operator):  # type: ignore[no-untyped-def]
    from django.test import AsyncClient

    client = AsyncClient()
    client.force_login(operator)
    return client
