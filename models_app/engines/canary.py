"""Canary 1B v2 (25 European languages; transcription, and translation to and from English).

Features (numpy) -> encoder (one call per batch of buffers) -> greedy decoding of each
buffer with the decoder's hidden-state cache: the first call reads the whole prompt,
each later call only the newest token, and `decoder_hidden_states` comes back as the
next `decoder_mems`. The model gives no times: words come back untimed and the
streaming policy places them over the speech it heard.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from models_app.engines.base import ModelFilesError, PassRequest
from models_app.engines.onnx import LANGUAGES, WORD_START, NemoEngine, check_signature, static_dim
from models_app.streaming import SAMPLE_RATE, Word

log = logging.getLogger(__name__)

END_OF_TEXT = "<|endoftext|>"
TASK_TOKENS = ("<|startofcontext|>", "<|startoftranscript|>", "<|emo:undefined|>")
FLAG_TOKENS = ("<|noitn|>", "<|notimestamp|>", "<|nodiarize|>")
# A buffer's text rarely needs more than this many tokens per second of audio (speech is
# about 3-6); the cap stops a decoder that repeats itself long before max_sequence_length.
TOKENS_PER_SECOND = 10
SPARE_TOKENS = 16


def language_token(code: str) -> str:
    return f"<|{code}|>"


class CanaryEngine(NemoEngine):
    NAME = "Canary 1B v2"
    MODEL_ID = "canary-1b"
    SETTING = "CANARY_MODEL_PATH"
    REPO = "istupakov/canary-1b-v2-onnx"
    FILES = {"encoder": "encoder-model", "decoder": "decoder-model"}
    TIMED = False

    @staticmethod
    def translation_targets(source: str) -> list[str]:
        """English translates into the 24 others; every other language into English only."""
        if source == "en":
            return LANGUAGES[1:]
        return ["en"] if source in LANGUAGES else []

    def __init__(
        self,
        location: Path | str,
        providers: list[str] | None = None,
        intra_threads: int = 0,
        inter_threads: int = 0,
        precision: str = "auto",
        punctuation: bool = True,
    ) -> None:
        super().__init__(location, providers, intra_threads, inter_threads, precision)
        self.encoder = self.sessions["encoder"]
        self.decoder = self.sessions["decoder"]
        check_signature(
            self.encoder,
            self.files["encoder"],
            {"audio_signal": "tensor(float)", "length": "tensor(int64)"},
            ["encoder_embeddings", "encoder_mask"],
            self.hint(),
        )
        check_signature(
            self.decoder,
            self.files["decoder"],
            {
                "input_ids": "tensor(int64)",
                "encoder_embeddings": "tensor(float)",
                "encoder_mask": "tensor(int64)",
                "decoder_mems": "tensor(float)",
            },
            ["logits", "decoder_hidden_states"],
            self.hint(),
        )
        needed = [WORD_START, END_OF_TEXT, *TASK_TOKENS, "<|pnc|>", "<|nopnc|>", *FLAG_TOKENS]
        needed += [language_token(code) for code in self.LANGUAGES]
        if missing := [token for token in needed if token not in self.vocab.ids]:
            raise ModelFilesError(
                f"{self.files['vocab.txt']} lacks the prompt token(s) {' '.join(missing)}: it is not Canary's "
                f"vocabulary. {self.hint()}"
            )
        self.end_of_text = self.vocab.ids[END_OF_TEXT]
        self.punctuation = punctuation
        self.max_length = int(self.config.get("max_sequence_length", 1024))
        self.mems_shape = (
            static_dim(self.decoder, "decoder_mems", 0, 10),
            static_dim(self.decoder, "decoder_mems", 3, 1024),
        )
        self.width = static_dim(self.decoder, "encoder_embeddings", 2, 1024)
        self._check_logits_width()

    def _check_logits_width(self) -> None:
        """One decoder call on zeros: it must give one log-probability per vocabulary token."""
        try:
            logits, _ = self.step(
                np.array([[self.end_of_text]], np.int64),
                np.zeros((1, 1, self.width), np.float32),
                np.ones((1, 1), np.int64),
                self.empty_mems(),
            )
        except Exception as exc:
            raise ModelFilesError(f"{self.files['decoder']} fails on one decoding step: {exc}") from None
        if logits.shape[-1] != len(self.vocab):
            raise ModelFilesError(
                f"{self.files['vocab.txt']} has {len(self.vocab)} tokens but {self.files['decoder']} gives "
                f"{logits.shape[-1]} logits: the two files do not belong together. {self.hint()}"
            )

    # --- the verbs ---------------------------------------------------------------------------------

    def window_words(
        self, encoded: tuple[np.ndarray, ...], request: PassRequest, offset: float, audio: np.ndarray
    ) -> list[Word]:
        embedding, mask = encoded
        prompt = self.prompt(request.language or "en", request.target_language)
        valid = int(mask.sum())
        tokens = self.decode(embedding[None, :valid], mask[None, :valid], prompt, self.limit(len(audio), prompt))
        return self.words(tokens)  # untimed: the policy places them

    def encode(self, audios: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Encoder embeddings [B, T', D] and mask [B, T'] (1 on valid frames) for a batch of buffers."""
        features, frames = self.features(audios)
        embeddings, mask = self.encoder.run(
            ["encoder_embeddings", "encoder_mask"], {"audio_signal": features, "length": frames}
        )
        return embeddings, mask

    # --- greedy decoding with the cache --------------------------------------------------------------

    def prompt(self, source: str, target: str | None = None) -> list[int]:
        """Token ids of the prompt: transcription when `target` is None or `source`, else translation."""
        pieces = [
            WORD_START,
            *TASK_TOKENS,
            language_token(source),
            language_token(target or source),
            "<|pnc|>" if self.punctuation else "<|nopnc|>",
            *FLAG_TOKENS,
        ]
        unknown = [p for p in pieces if p not in self.vocab.ids]
        if unknown:
            raise ValueError(f"Canary does not know the language(s) {' '.join(unknown)}.")
        return [self.vocab.ids[p] for p in pieces]

    def limit(self, samples: int, prompt: list[int]) -> int:
        """Most tokens (prompt included) a buffer of `samples` may decode to."""
        budget = SPARE_TOKENS + math.ceil(TOKENS_PER_SECOND * samples / SAMPLE_RATE)
        return min(self.max_length, len(prompt) + budget)

    def empty_mems(self) -> np.ndarray:
        layers, hidden = self.mems_shape
        return np.zeros((layers, 1, 0, hidden), np.float32)

    def step(
        self, input_ids: np.ndarray, embeddings: np.ndarray, mask: np.ndarray, mems: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One decoder call: log-probabilities [1, L, V] and the cache [layers, 1, M + L, hidden]."""
        logits, hidden = self.decoder.run(
            ["logits", "decoder_hidden_states"],
            {"input_ids": input_ids, "encoder_embeddings": embeddings, "encoder_mask": mask, "decoder_mems": mems},
        )
        return logits, hidden

    def decode(
        self, embeddings: np.ndarray, mask: np.ndarray, prompt: list[int], limit: int
    ) -> list[tuple[int, float]]:
        """Greedy tokens and their log-probabilities after `prompt`, until <|endoftext|> or `limit` tokens.

        embeddings: [1, T', D]; mask: [1, T'].
        """
        tokens: list[tuple[int, float]] = []
        input_ids, mems = np.array([prompt], np.int64), self.empty_mems()
        while len(prompt) + len(tokens) < limit:
            logits, mems = self.step(input_ids, embeddings, mask, mems)
            scores = logits[0, -1]
            token = int(scores.argmax())
            if token == self.end_of_text:
                break
            tokens.append((token, float(scores[token])))
            input_ids = np.array([[token]], np.int64)
        return tokens

    # --- text ----------------------------------------------------------------------------------------

    def words(self, tokens: list[tuple[int, float]]) -> list[Word]:
        """Untimed words, each with exp(mean log-probability of its tokens)."""
        return [
            Word(text, 0.0, 0.0, min(1.0, float(np.exp(np.mean([tokens[p][1] for p in positions])))))
            for text, positions in self.vocab.words([token for token, _ in tokens])
        ]


ENGINE = CanaryEngine
