"""Parakeet TDT 0.6B (v3: 25 European languages) from its published ONNX export.

Features (numpy) -> encoder (one call per batch of buffers) -> greedy TDT decoding
(the fused decoder+joint graph, one call per step) -> words with times and confidence.
The model finds the language itself: the request's language is not used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models_app.engines.base import ModelFilesError, PassRequest
from models_app.engines.onnx import NemoEngine, check_signature, static_dim
from models_app.streaming import Word

log = logging.getLogger(__name__)

DURATIONS = (0, 1, 2, 3, 4)  # encoder frames a TDT step may skip: the joint's last five outputs
BLANK = "<blk>"


@dataclass(frozen=True)
class Token:
    id: int
    frame: int  # encoder frame it was emitted on
    duration: int  # frames the joint said it lasts
    log_prob: float  # log-softmax over the vocabulary


class ParakeetEngine(NemoEngine):
    NAME = "Parakeet TDT"
    MODEL_ID = "parakeet-tdt"
    SETTING = "TDT_MODEL_PATH"
    REPO = "istupakov/parakeet-tdt-0.6b-v3-onnx"
    FILES = {"encoder": "encoder-model", "decoder_joint": "decoder_joint-model"}

    def __init__(
        self,
        location: Path | str,
        providers: list[str] | None = None,
        intra_threads: int = 0,
        inter_threads: int = 0,
        precision: str = "auto",
    ) -> None:
        super().__init__(location, providers, intra_threads, inter_threads, precision)
        self.encoder = self.sessions["encoder"]
        self.joint = self.sessions["decoder_joint"]
        check_signature(
            self.encoder,
            self.files["encoder"],
            {"audio_signal": "tensor(float)", "length": "tensor(int64)"},
            ["outputs", "encoded_lengths"],
            self.hint(),
        )
        check_signature(
            self.joint,
            self.files["decoder_joint"],
            {
                "encoder_outputs": "tensor(float)",
                "targets": "tensor(int32)",
                "target_length": "tensor(int32)",
                "input_states_1": "tensor(float)",
                "input_states_2": "tensor(float)",
            },
            ["outputs", "output_states_1", "output_states_2"],
            self.hint(),
        )
        if self.vocab.pieces[-1] != BLANK:
            raise ModelFilesError(f"{self.files['vocab.txt']} does not end with the blank token {BLANK}. {self.hint()}")
        self.blank = len(self.vocab) - 1
        self.max_tokens_per_step = int(self.config.get("max_tokens_per_step", 10))
        self.width = static_dim(self.joint, "encoder_outputs", 1, 1024)
        self.states = tuple(
            np.zeros((static_dim(self.joint, n, 0, 2), 1, static_dim(self.joint, n, 2, 640)), np.float32)
            for n in ("input_states_1", "input_states_2")
        )
        self._check_joint_width()

    def _check_joint_width(self) -> None:
        """One joint step on zeros: its output must hold the vocabulary's logits and five durations."""
        try:
            logits, _ = self.step(np.zeros(self.width, np.float32), self.blank, self.states)
        except Exception as exc:
            raise ModelFilesError(f"{self.files['decoder_joint']} fails on one decoding step: {exc}") from None
        if logits.size != len(self.vocab) + len(DURATIONS):
            raise ModelFilesError(
                f"{self.files['vocab.txt']} has {len(self.vocab)} tokens but {self.files['decoder_joint']} gives "
                f"{logits.size} outputs, not {len(self.vocab)} + {len(DURATIONS)} durations: the two files do not "
                f"belong together. {self.hint()}"
            )

    # --- the verbs ---------------------------------------------------------------------------------

    def window_words(
        self, encoded: tuple[np.ndarray, ...], request: PassRequest, offset: float, audio: np.ndarray
    ) -> list[Word]:
        frames, length = encoded
        return self.words(self.decode(np.ascontiguousarray(frames[:, :length].T)), offset=offset)

    def encode(self, audios: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Encoder frames [B, D, T'] and their counts [B] for a batch of buffers."""
        features, frames = self.features(audios)
        outputs, lengths = self.encoder.run(
            ["outputs", "encoded_lengths"], {"audio_signal": features, "length": frames}
        )
        return outputs, np.minimum(lengths, outputs.shape[2])

    # --- greedy TDT ----------------------------------------------------------------------------------

    def step(
        self, frame: np.ndarray, last: int, states: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """One joint call: logits [vocab + 5] for encoder frame [D] after token `last`, and new states."""
        outputs, state_1, state_2 = self.joint.run(
            ["outputs", "output_states_1", "output_states_2"],
            {
                "encoder_outputs": frame.reshape(1, -1, 1),
                "targets": np.array([[last]], np.int32),
                "target_length": np.ones(1, np.int32),
                "input_states_1": states[0],
                "input_states_2": states[1],
            },
        )
        return outputs.reshape(-1), (state_1, state_2)

    def decode(self, frames: np.ndarray) -> list[Token]:
        """Greedy TDT over one buffer's encoder frames [T', D] (MODELS.md's rules, exactly)."""
        vocab, tokens = len(self.vocab), []
        last, states = self.blank, self.states
        t, emitted_here = 0, 0
        while t < len(frames):
            logits, new_states = self.step(frames[t], last, states)
            token = int(logits[:vocab].argmax())
            duration = DURATIONS[int(logits[vocab:].argmax())]
            if token != self.blank:
                tokens.append(Token(token, t, duration, log_softmax_at(logits[:vocab], token)))
                last, states = token, new_states  # the prediction network advances on tokens only
                emitted_here += 1
            if duration > 0:
                t, emitted_here = t + duration, 0
            elif token == self.blank or emitted_here >= self.max_tokens_per_step:
                t, emitted_here = t + 1, 0
        return tokens

    # --- text ------------------------------------------------------------------------------------------

    def words(self, tokens: list[Token], offset: float = 0.0) -> list[Word]:
        """Words with times in seconds (`offset` + frame times) and exp(mean token log-probability).

        A word starts at its first token's frame and ends where its last token's duration
        ends (at least one frame), or where the next token starts if that is earlier (a
        pause after a word is not part of it); a word lasts one frame at least.
        """
        words = []
        for text, positions in self.vocab.words([t.id for t in tokens]):
            first, last = tokens[positions[0]], tokens[positions[-1]]
            end = last.frame + max(last.duration, 1)
            if positions[-1] + 1 < len(tokens):
                end = min(end, tokens[positions[-1] + 1].frame)
            end = max(end, first.frame + 1)
            probability = float(np.exp(np.mean([tokens[p].log_prob for p in positions])))
            words.append(
                Word(text, offset + first.frame * self.frame_secs, offset + end * self.frame_secs, probability)
            )
        return words


def log_softmax_at(logits: np.ndarray, index: int) -> float:
    """log softmax(logits)[index] for logits [V]."""
    top = float(logits.max())
    return float(logits[index]) - top - float(np.log(np.exp(logits - top).sum()))


ENGINE = ParakeetEngine
