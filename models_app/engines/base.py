"""What an offline speech engine offers the streaming policy.

An engine is loaded once per process and shared by every stream of its model. It
transcribes whole buffers, several at once (a batch gathered from many streams), and
says where each word lies in its buffer when it can.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models_app.streaming import Word


class ModelFilesError(Exception):
    """The model's files are missing or malformed; the message says what and how to fix it."""


@dataclass(frozen=True)
class PassRequest:
    """One pass over one stream's rolling buffer.

    `context` is confirmed text spoken before the buffer (a prompt for models that take
    one); `prefix` is the confirmed text at the start of the buffer, which engines that
    can force a decoder prefix (Whisper) continue from instead of re-deciding.
    """

    audio: np.ndarray  # [samples] float32, 16 kHz mono
    language: str | None = None
    target_language: str | None = None
    context: str = ""
    prefix: str = ""


@dataclass
class PassResult:
    """Words of one pass; times are seconds from the start of the request's audio.

    Engines that cannot time words (Canary) return `timed=False`; the policy then places
    the words over the speech it heard. Engines that continued from the request's
    `prefix` return only the words after it, with `continues_prefix=True`; otherwise the
    words cover the whole buffer, the prefix's words included.
    """

    words: list[Word] = field(default_factory=list)
    timed: bool = True
    continues_prefix: bool = False


class Engine(abc.ABC):
    """A loaded model. Thread-safe: `transcribe` may be called from any thread."""

    #: the execution provider or device actually in use, for /api/models
    provider: str = "cpu"
    #: how many requests one `transcribe` call should take at most
    max_batch: int = 8
    #: how many `transcribe` calls may run at once (threads of the batch runner)
    parallel: int = 1

    @classmethod
    @abc.abstractmethod
    def missing_files(cls, location: Path | str) -> str | None:
        """A sentence saying what is missing at `location` and how to get it, or None."""

    @abc.abstractmethod
    def transcribe(self, requests: list[PassRequest]) -> list[PassResult]:
        """Transcribe each request's audio; one result per request, in order."""
