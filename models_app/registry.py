"""The speech models this server knows, built from settings, and the engines loaded from them.

Adding a model is one engine module in `models_app/engines/` and one entry in `SPECS`.
Engines load lazily, once per process, on the first stream that needs them; every
stream of a model shares its engine (and the engine's batch runner).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil
from django.conf import settings

from models_app import diarization, offline
from models_app.batching import BACKGROUND
from models_app.engines.base import Engine, ModelFilesError
from models_app.policy import DEFAULT_PRESET, PRESETS, StreamingPolicy
from models_app.scheduler import PassScheduler
from models_app.streaming import Word

log = logging.getLogger(__name__)


class ModelError(Exception):
    """A stream cannot be made; the message is a sentence for the user."""


@dataclass(frozen=True)
class ModelSpec:
    id: str
    display_name: str
    description: str
    missing: Callable[[], str | None]  # what is missing and how to get it, or None
    load: Callable[[], Engine]
    languages: Callable[[], list[str]]
    targets: Callable[[str], list[str]] = lambda source: []  # languages it translates `source` into
    supports_prefix: bool = False  # the engine can continue from confirmed words (see PassRequest)
    provider: Callable[[], str] = lambda: "cpu"  # the provider it would load on

    def check_languages(self, language: str | None, target_language: str | None) -> tuple[str, str | None]:
        """The (source, target) a stream will use; ModelError if the model cannot do it."""
        languages = self.languages()
        source = language or languages[0]
        if source not in languages:
            shown = ", ".join(languages[:30]) + (" …" if len(languages) > 30 else "")
            raise ModelError(f"{self.display_name} does not transcribe '{source}'; it knows: {shown}.")
        if target_language and target_language != source:
            targets = self.targets(source)
            if target_language not in targets:
                can = f"only into {', '.join(targets)}" if targets else "not at all"
                raise ModelError(f"{self.display_name} translates '{source}' {can}, not into '{target_language}'.")
            return source, target_language
        return source, None


@dataclass
class Loaded:
    engine: Engine
    runner: PassScheduler
    memory_bytes: int
    load_secs: float


@dataclass
class ModelRegistry:
    specs: dict[str, ModelSpec]
    _loaded: dict[str, Loaded] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def spec(self, model_id: str) -> ModelSpec:
        try:
            return self.specs[model_id]
        except KeyError:
            known = ", ".join(self.specs)
            raise ModelError(f"There is no model '{model_id}'. Known models: {known}.") from None

    def unavailable_reason(self, model_id: str) -> str | None:
        return self.spec(model_id).missing()

    def loaded(self, model_id: str) -> Loaded:
        """The model's engine, loaded on first use (once per process, whatever the threads)."""
        if model_id in self._loaded:
            return self._loaded[model_id]
        spec = self.spec(model_id)
        with self._guard:
            lock = self._locks.setdefault(model_id, threading.Lock())
        with lock:
            if model_id not in self._loaded:
                if reason := spec.missing():
                    raise ModelError(reason)
                rss = psutil.Process().memory_info().rss
                started = time.perf_counter()
                try:
                    engine = spec.load()
                except ModelFilesError as exc:  # present but malformed: found at load, not mid-session
                    raise ModelError(str(exc)) from None
                loaded = Loaded(
                    engine=engine,
                    runner=PassScheduler(engine, model_id),
                    memory_bytes=max(psutil.Process().memory_info().rss - rss, 0),
                    load_secs=time.perf_counter() - started,
                )
                self._loaded[model_id] = loaded
                log.info(
                    "loaded %s on %s in %.1f s (+%d MB)",
                    model_id,
                    engine.provider,
                    loaded.load_secs,
                    loaded.memory_bytes // 2**20,
                )
        return self._loaded[model_id]

    def create_transcriber(
        self,
        model_id: str,
        language: str | None = None,
        target_language: str | None = None,
        preset: str = DEFAULT_PRESET,
        **options: Any,
    ) -> StreamingPolicy:
        """A fresh stream for one session. ModelError says why when it cannot be made."""
        spec = self.spec(model_id)
        source, target = spec.check_languages(language, target_language)
        config = preset_config(preset)
        if options:
            config = config.__class__(**{**config.__dict__, **options})
        loaded = self.loaded(model_id)
        return StreamingPolicy(loaded.runner, config, source, target, supports_prefix=spec.supports_prefix)

    def transcribe_offline(
        self,
        model_id: str,
        audio: np.ndarray,
        language: str | None = None,
        target_language: str | None = None,
        priority: int = BACKGROUND,
        progress: Callable[[float], None] | None = None,
    ) -> list[Word]:
        """One offline pass over a whole recording (`models_app.offline`); ModelError says why it cannot run."""
        source, target = self.spec(model_id).check_languages(language, target_language)
        return offline.transcribe(self.loaded(model_id).runner, audio, source, target, priority, progress)

    def loads(self) -> dict[str, dict[str, Any]]:
        """Each loaded model's measured load, and whether it admits one more stream (and why)."""
        loads = {}
        for model_id, loaded in list(self._loaded.items()):
            load = loaded.runner.load()
            admission = loaded.runner.admission(settings.ADMISSION_P95_SECS, load)
            loads[model_id] = {**load, "admits": admission.admits, "reason": admission.reason}
        return loads

    def describe(self, model_id: str) -> dict[str, Any]:
        spec = self.spec(model_id)
        reason = spec.missing()
        loaded = self._loaded.get(model_id)
        return {
            "id": spec.id,
            "display_name": spec.display_name,
            "description": spec.description,
            "languages": spec.languages(),
            "translates": any(spec.targets(lang) for lang in spec.languages()[:3]),
            "available": reason is None,
            "unavailable_reason": reason,
            "loaded": loaded is not None,
            "provider": loaded.engine.provider if loaded else spec.provider(),
            "memory_mb": round(loaded.memory_bytes / 2**20) if loaded else None,
            "presets": list(PRESETS),
            "diarization": diarization.describe(),  # the same for every model: one diarizer beside each
        }

    def describe_all(self) -> list[dict[str, Any]]:
        return [self.describe(model_id) for model_id in self.specs]


def preset_config(name: str) -> Any:
    try:
        return PRESETS[name]
    except KeyError:
        raise ModelError(f"There is no preset '{name}'. Presets: {', '.join(PRESETS)}.") from None


# --- the models ----------------------------------------------------------------------------------


def _whisper_missing() -> str | None:
    from models_app.engines.whisper import WhisperEngine

    return WhisperEngine.missing_files(settings.WHISPER_MODEL)


def _whisper_load() -> Engine:
    from models_app.engines.whisper import WhisperEngine

    return WhisperEngine(
        settings.WHISPER_MODEL,
        use_gpu=settings.USE_GPU,
        threads=settings.INTRA_THREADS,
        workers=settings.INTER_THREADS,
    )


def _whisper_languages() -> list[str]:
    from models_app.engines.whisper import languages_of

    return languages_of(settings.WHISPER_MODEL)


def _whisper_targets(source: str) -> list[str]:
    return ["en"] if source != "en" and len(_whisper_languages()) > 1 else []


def _whisper_provider() -> str:
    import ctranslate2

    if settings.USE_GPU and ctranslate2.get_cuda_device_count() > 0:
        return "ctranslate2 cuda (float16)"
    return "ctranslate2 cpu (int8)"


SPECS = [
    ModelSpec(
        id="parakeet-tdt",
        display_name="Parakeet TDT 0.6B v3",
        description="NVIDIA's fast transducer for 25 European languages, with word times (ONNX Runtime).",
        missing=lambda: _onnx("parakeet").missing_files(settings.TDT_MODEL_PATH),
        load=lambda: _onnx("parakeet").from_settings(settings.TDT_MODEL_PATH),
        languages=lambda: _onnx("parakeet").LANGUAGES,
        provider=lambda: _onnx_provider(),
    ),
    ModelSpec(
        id="canary-1b",
        display_name="Canary 1B v2",
        description="NVIDIA's encoder-decoder for 25 European languages; transcribes and translates (ONNX Runtime).",
        missing=lambda: _onnx("canary").missing_files(settings.CANARY_MODEL_PATH),
        load=lambda: _onnx("canary").from_settings(settings.CANARY_MODEL_PATH),
        languages=lambda: _onnx("canary").LANGUAGES,
        targets=lambda source: _onnx("canary").translation_targets(source),
        provider=lambda: _onnx_provider(),
    ),
    ModelSpec(
        id="whisper",
        display_name="Whisper",
        description="OpenAI Whisper on CTranslate2; by default the bundled tiny.en, which needs no download.",
        missing=_whisper_missing,
        load=_whisper_load,
        languages=_whisper_languages,
        targets=_whisper_targets,
        supports_prefix=True,
        provider=_whisper_provider,
    ),
]


def _onnx(name: str) -> Any:
    """The ONNX engine class `name` (imported on use, so that settings are read late)."""
    import importlib

    module = importlib.import_module(f"models_app.engines.{name}")
    return module.ENGINE


def _onnx_provider() -> str:
    from models_app.engines.onnx import chosen_providers

    return chosen_providers()[0]


registry = ModelRegistry({spec.id: spec for spec in SPECS})


def create_transcriber(model_id: str, **kwargs: Any) -> StreamingPolicy:
    return registry.create_transcriber(model_id, **kwargs)
