"""`python manage.py download_model parakeet-tdt|canary-1b|whisper|sortformer [--int8]`

Fetches a model's published files from the Hugging Face hub into the directory the
settings name (TDT_MODEL_PATH, CANARY_MODEL_PATH, DIAR_MODEL_PATH; Whisper into the hub's
cache). Where the hub cannot be reached it stops at once and says how to copy the files by hand.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from models_app.engines import sortformer
from models_app.engines.canary import CanaryEngine
from models_app.engines.onnx import NemoEngine
from models_app.engines.parakeet import ParakeetEngine

ONNX_MODELS: dict[str, type[NemoEngine]] = {"parakeet-tdt": ParakeetEngine, "canary-1b": CanaryEngine}
REACH_TIMEOUT_SECS = 5.0


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


def reachable_hub(by_hand: Callable[[str], str]) -> str:
    """The hub's endpoint; where it cannot be reached, a CommandError at once, ending with `by_hand(endpoint)`:
    how to copy the files instead."""
    endpoint = hub_endpoint()
    if reason := unreachable_reason(endpoint):
        raise CommandError(
            f"The Hugging Face hub ({endpoint}) cannot be reached from this machine ({reason}). {by_hand(endpoint)}"
        )
    return endpoint


def unreachable_reason(endpoint: str, timeout: float = REACH_TIMEOUT_SECS) -> str | None:
    """Why the hub cannot be reached (a short phrase), or None when it answers at all.

    Asked in a thread with a hard deadline: name resolution ignores urlopen's timeout.
    """
    answer: list[str | None] = []

    def ask() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
            answer.append(None)
        except urllib.error.HTTPError:
            answer.append(None)  # it answered, even if not with 200
        except (urllib.error.URLError, OSError) as exc:
            answer.append(str(getattr(exc, "reason", exc)) or type(exc).__name__)

    thread = threading.Thread(target=ask, name="hub-check", daemon=True)
    thread.start()
    thread.join(timeout + 1)
    return answer[0] if answer else f"no answer within {timeout:.0f} s"


class Command(BaseCommand):
    help = "Download a model's published files: parakeet-tdt, canary-1b, whisper or sortformer (speakers)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", choices=[*ONNX_MODELS, "whisper", "sortformer"], help="which model to download")
        parser.add_argument(
            "--int8", action="store_true", help="the int8 ONNX files (smaller, faster on CPUs) instead of fp32"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        model, int8 = options["model"], options["int8"]
        if model in ("whisper", "sortformer") and int8:
            raise CommandError(f"--int8 is for parakeet-tdt and canary-1b; {model} has one published file.")
        if model == "whisper":
            self.download_whisper()
        elif model == "sortformer":
            self.download_sortformer()
        else:
            self.download_onnx(ONNX_MODELS[model], int8)

    def download_onnx(self, engine: type[NemoEngine], int8: bool) -> None:
        directory = Path(getattr(settings, engine.SETTING)).expanduser()
        files = engine.published_files(int8)
        reachable_hub(
            lambda endpoint: (
                f"Copy the files by hand: on a machine that can reach it, download {', '.join(files)} "
                f"from {endpoint}/{engine.REPO}, and put them in {directory} (or set {engine.SETTING} to the directory "
                f"that holds them)."
            )
        )
        from huggingface_hub import snapshot_download

        directory.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"Downloading {', '.join(files)} from {engine.REPO} into {directory} ...")
        try:
            snapshot_download(engine.REPO, allow_patterns=files, local_dir=directory, etag_timeout=REACH_TIMEOUT_SECS)
        except Exception as exc:
            raise CommandError(
                f"Downloading {engine.REPO} failed: {exc}. Run the command again to resume, or copy "
                f"{', '.join(files)} into {directory} by hand."
            ) from None
        if reason := engine.missing_files(directory):
            raise CommandError(f"The download finished but the files are not complete: {reason}")
        precision = "int8" if int8 else "fp32"
        self.stdout.write(self.style.SUCCESS(f"{engine.NAME} ({precision}) is ready in {directory}."))

    def download_sortformer(self) -> None:
        """The export, into DIAR_MODEL_PATH (the directory, or the file's own directory)."""
        target = sortformer.export_path(settings.DIAR_MODEL_PATH)
        directory = target.parent
        reachable_hub(
            lambda endpoint: (
                f"Copy the file by hand: on a machine that can reach it, download {sortformer.FILE_NAME} "
                f"from {endpoint}/{sortformer.REPO}, and put it at {target} "
                f"(or set {sortformer.SETTING} to where it is)."
            )
        )
        from huggingface_hub import hf_hub_download

        directory.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"Downloading {sortformer.FILE_NAME} from {sortformer.REPO} into {directory} ...")
        try:
            fetched = Path(
                hf_hub_download(
                    sortformer.REPO, sortformer.FILE_NAME, local_dir=directory, etag_timeout=REACH_TIMEOUT_SECS
                )
            )
        except Exception as exc:
            raise CommandError(
                f"Downloading {sortformer.REPO} failed: {exc}. Run the command again to resume, or copy "
                f"{sortformer.FILE_NAME} to {target} by hand."
            ) from None
        if fetched != target:
            fetched.replace(target)
        if reason := sortformer.missing_files(target):
            raise CommandError(f"The download finished but the file is not there: {reason}")
        self.stdout.write(
            self.style.SUCCESS(f"{sortformer.NAME} is ready at {target}; new sessions tell speakers apart.")
        )

    def download_whisper(self) -> None:
        name = settings.WHISPER_MODEL
        if not name:
            self.stdout.write(
                "Whisper uses the bundled tiny.en, which is installed with the requirements and needs no download. "
                "Set WHISPER_MODEL to a model name (e.g. small.en) to download another."
            )
            return
        if Path(name).expanduser().is_dir():
            self.stdout.write(f"WHISPER_MODEL={name} is a local directory: nothing to download.")
            return
        reachable_hub(
            lambda endpoint: (
                "Copy a CTranslate2 Whisper model directory (model.bin, config.json, tokenizer.json, "
                "vocabulary files) here by hand and set WHISPER_MODEL to its path."
            )
        )
        from faster_whisper.utils import download_model

        try:
            path = download_model(name)
        except Exception as exc:
            raise CommandError(f"Downloading Whisper '{name}' failed: {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"Whisper '{name}' is ready in {path}."))
