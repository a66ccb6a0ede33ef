"""Live subtitles from offline models: the streaming policy shared by every engine.

The stream keeps a rolling buffer of audio and re-transcribes it every `interval_secs`
of media time while there is unconfirmed speech in it. A word becomes final when

* two consecutive passes agree on it (LocalAgreement-2), or
* the speaker paused: `pause_secs` of silence (VAD) after it, or
* it ended more than `confirm_after_secs` before the newest audio;

final words are never retracted. What is not final yet is the partial. The buffer is
cut at confirmed sentence ends and after pauses, and never grows past
`max_buffer_secs`. Silence and music never reach the model (Silero VAD), and words the
model puts where the VAD heard no speech are dropped, so neither produces text.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

import numpy as np

from models_app.batching import BatchRunner
from models_app.engines.base import PassRequest, PassResult
from models_app.streaming import (
    SAMPLE_RATE,
    StreamingTranscriber,
    TranscriptionChunk,
    TranscriptionSegment,
    Word,
)
from models_app.vad import FRAME_SECS, StreamingVad, speech_mask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyConfig:
    name: str
    interval_secs: float  # re-transcribe the buffer this often (media time)
    pause_secs: float  # this much silence after speech confirms everything before it
    confirm_after_secs: float  # a word this far behind the newest audio is final even without agreement
    max_buffer_secs: float  # the buffer never holds more audio than this
    right_context_secs: float = 0.6  # passes agree on a word only once this much audio followed it
    trim_secs: float = 8.0  # past this, the buffer is cut at the latest sentence end or pause
    min_speech_secs: float = 0.6  # a new utterance is first transcribed once this much of it was heard
    partials: bool = True  # send partials (a falling-behind worker turns them off)


PRESETS: dict[str, PolicyConfig] = {
    "low_latency": PolicyConfig(
        "low_latency",
        interval_secs=0.3,
        pause_secs=0.35,
        confirm_after_secs=2.0,
        max_buffer_secs=15.0,
        right_context_secs=0.4,
        trim_secs=8.0,
        min_speech_secs=0.8,
    ),
    "balanced": PolicyConfig(
        "balanced",
        interval_secs=0.5,
        pause_secs=0.5,
        confirm_after_secs=3.0,
        max_buffer_secs=20.0,
        right_context_secs=0.5,
        trim_secs=10.0,
        min_speech_secs=1.0,
    ),
    "accurate": PolicyConfig(
        "accurate",
        interval_secs=1.0,
        pause_secs=0.8,
        confirm_after_secs=5.0,
        max_buffer_secs=25.0,
        right_context_secs=1.0,
        trim_secs=14.0,
        min_speech_secs=1.0,
    ),
}
DEFAULT_PRESET = "balanced"

SENTENCE_END = re.compile(r"[.!?…。！？]['\")\]]*$")
_CONTEXT_WORDS = 40  # confirmed words kept as the prompt for the next buffer
_SPEECH_THRESHOLD = 0.5


def normalise(text: str) -> str:
    """A word as passes are compared: case and punctuation do not count."""
    return re.sub(r"[^\w']+", "", text.lower())


def join_words(words: list[Word]) -> str:
    """Words as text; each word's text carries its own leading space where it starts a word."""
    return "".join(w.text for w in words).strip()


def without_loops(words: list[Word]) -> list[Word]:
    """The words up to where the hypothesis starts repeating itself (A B A B, or A A A).

    Decoders caught in a loop repeat a phrase they just said; two passes may agree on the
    loop, so it is cut before agreement is looked for. Real speech rarely repeats a phrase
    of two or more words back to back, or one word three times.
    """
    keys = [normalise(w.text) for w in words]
    for end in range(2, len(keys) + 1):
        for n in range(2, end // 2 + 1):
            if keys[end - n : end] == keys[end - 2 * n : end - n]:
                return words[: end - n]
        if end >= 3 and keys[end - 1] == keys[end - 2] == keys[end - 3]:
            return words[: end - 1]
    return words


class StreamingPolicy(StreamingTranscriber):
    """One session's stream over a shared engine (through its batch runner)."""

    def __init__(
        self,
        runner: BatchRunner,
        config: PolicyConfig,
        language: str | None = None,
        target_language: str | None = None,
        supports_prefix: bool = False,
    ) -> None:
        self.runner = runner
        self.config = config
        self.language = language
        self.target_language = target_language
        self.supports_prefix = supports_prefix
        self.passes = 0
        self.reset()

    # --- the interface ------------------------------------------------------------------

    def reset(self) -> None:
        self._vad = StreamingVad()
        self._audio = np.zeros(0, np.float32)
        self._buffer_start = 0.0  # media time of self._audio[0]
        self._total = 0  # samples pushed since the start
        self._probs = np.zeros(0, np.float32)  # VAD of every frame since `_probs_start`
        self._probs_start = 0  # index of the first frame in `_probs`
        self._in_buffer: list[Word] = []  # final words whose audio is still in the buffer
        self._context: list[Word] = []  # final words before the buffer
        self._confirmed_until = 0.0  # media time where the last final word ends
        self._previous: list[Word] = []  # unconfirmed words of the previous pass
        self._last_pass_at = -1e9
        self._partial_shown = ""
        self._timed = True  # whether the engine's words come with their own times

    def push_audio(self, samples: np.ndarray) -> TranscriptionChunk:
        self._append(np.asarray(samples, np.float32).reshape(-1))
        if self.now - self._last_pass_at < self.config.interval_secs:
            return TranscriptionChunk()
        if not self._unconfirmed_speech() and not self._previous:
            chunk = TranscriptionChunk(self._partial_segments([]))
            self._drop_silence()
            return chunk
        if not self._previous and self._unconfirmed_speech_secs() < self.config.min_speech_secs:
            return TranscriptionChunk()  # too little of a new utterance yet: models guess wildly on a syllable
        return self._pass(final=False)

    def finalize(self) -> TranscriptionChunk:
        pending = self._unconfirmed_speech() or self._previous
        chunk = self._pass(final=True) if pending else TranscriptionChunk(self._partial_segments([]))
        chunk.is_final = True
        return chunk

    # --- knobs a falling-behind worker turns -----------------------------------------------

    def set_pace(self, interval_secs: float, partials: bool) -> None:
        self.config = replace(self.config, interval_secs=interval_secs, partials=partials)

    # --- audio and VAD -----------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Media time of the newest sample."""
        return self._total / SAMPLE_RATE

    def _append(self, samples: np.ndarray) -> None:
        self._audio = np.concatenate([self._audio, samples])
        self._total += len(samples)
        self._probs = np.concatenate([self._probs, self._vad.push(samples)])

    def _speech(self, start: float, end: float) -> np.ndarray:
        """Speech mask of the frames between two media times."""
        first = max(int(start / FRAME_SECS), self._probs_start)
        last = min(int(np.ceil(end / FRAME_SECS)), self._probs_start + len(self._probs))
        if last <= first:
            return np.zeros(0, bool)
        return speech_mask(self._probs[first - self._probs_start : last - self._probs_start], _SPEECH_THRESHOLD)

    def _unconfirmed_speech(self) -> bool:
        return bool(self._speech(max(self._confirmed_until, self._buffer_start), self.now).any())

    def _unconfirmed_speech_secs(self) -> float:
        return float(self._speech(max(self._confirmed_until, self._buffer_start), self.now).sum()) * FRAME_SECS

    def _speech_end(self) -> float:
        """Media time where the last speech in the buffer ends (the buffer start if none)."""
        mask = self._speech(self._buffer_start, self.now)
        if not mask.any():
            return self._buffer_start
        first_frame = max(int(self._buffer_start / FRAME_SECS), self._probs_start)
        return (first_frame + int(np.flatnonzero(mask)[-1]) + 1) * FRAME_SECS

    # --- one pass ------------------------------------------------------------------------------

    def _pass(self, final: bool) -> TranscriptionChunk:
        self._last_pass_at = self.now
        self.passes += 1
        result = self.runner.run(
            PassRequest(
                audio=self._audio,
                language=self.language,
                target_language=self.target_language,
                context=join_words(self._context[-_CONTEXT_WORDS:]),
                prefix=join_words(self._in_buffer) if self.supports_prefix else "",
            )
        )
        words = self._heard(self._in_media_time(result))
        candidates = without_loops(self._after_confirmed(words))
        confirmed = self._confirmable(candidates, final)
        self._previous = candidates[len(confirmed) :]
        segments = self._final_segments(confirmed)
        segments += self._partial_segments(self._previous)
        self._trim()
        return TranscriptionChunk(segments)

    def _in_media_time(self, result: PassResult) -> list[Word]:
        self._timed = result.timed
        if not result.timed:
            return self._placed_over_speech(result.words)
        offset = self._buffer_start
        return [
            Word(w.text, offset + w.start, min(offset + max(w.end, w.start), self.now), w.probability)
            for w in result.words
        ]

    def _placed_over_speech(self, words: list[Word]) -> list[Word]:
        """Times for untimed words: spread over the buffer's speech by their length."""
        if not words:
            return []
        first = max(int(self._buffer_start / FRAME_SECS), self._probs_start)
        mask = self._speech(self._buffer_start, self.now)
        frames = (first + np.flatnonzero(mask)) * FRAME_SECS if mask.any() else np.array([self._buffer_start])
        weights = np.array([max(len(w.text.strip()), 1) for w in words], float)
        edges = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()]) * (len(frames) - 1)
        times = np.interp(edges, np.arange(len(frames)), frames)
        times[-1] = min(times[-1] + FRAME_SECS, self.now)  # the last word ends with its last frame
        # a word that straddles a pause belongs to the stretch of speech that holds most of it
        breaks = np.flatnonzero(np.diff(frames) > 1.5 * FRAME_SECS)
        runs = list(
            zip(
                frames[np.concatenate([[0], breaks + 1])],
                frames[np.concatenate([breaks, [len(frames) - 1]])] + FRAME_SECS,
                strict=True,
            )
        )
        placed: list[Word] = []
        for i, word in enumerate(words):
            start, end = float(times[i]), float(times[i + 1])
            run_start, run_end = max(runs, key=lambda run: min(end, run[1]) - max(start, run[0]))
            start = max(start, float(run_start), placed[-1].end if placed else 0.0)
            placed.append(Word(word.text, start, max(min(end, float(run_end)), start), word.probability))
        return placed

    def _heard(self, words: list[Word]) -> list[Word]:
        """Words where the VAD heard speech, their edges pulled in to it; the others dropped.

        Models invent words on silence, and aligners stretch the first word over the
        silence before it: neither may reach the transcript or its timestamps.
        """
        heard = []
        for word in words:
            first = max(int(word.start / FRAME_SECS), self._probs_start)
            mask = self._speech(first * FRAME_SECS, word.end + FRAME_SECS)
            if not mask.any():
                continue
            speech = np.flatnonzero(mask)
            start = max(word.start, (first + speech[0]) * FRAME_SECS)
            end = min(max(word.end, start), (first + speech[-1] + 1) * FRAME_SECS)
            heard.append(Word(word.text, start, max(end, start), word.probability))
        return heard

    def _after_confirmed(self, words: list[Word]) -> list[Word]:
        """The part of a pass not yet final: after the final words, without repeating them."""
        fresh = [w for w in words if (w.start + w.end) / 2 > self._confirmed_until]
        # a final word re-transcribed with a slightly later time must not come out twice
        tail = [normalise(w.text) for w in (self._context + self._in_buffer)[-5:]]
        for n in range(min(len(tail), len(fresh)), 0, -1):
            if tail[-n:] == [normalise(w.text) for w in fresh[:n]]:
                return fresh[n:]
        return fresh

    def _confirmable(self, candidates: list[Word], final: bool) -> list[Word]:
        if final:
            return candidates
        agreed = 0
        settled = self.now - self.config.right_context_secs
        for new, old in zip(candidates, self._previous, strict=False):
            if normalise(new.text) != normalise(old.text) or new.end > settled:
                break
            agreed += 1
        speech_end = self._speech_end()
        if self.now - speech_end >= self.config.pause_secs:
            # the speaker paused: everything heard before the pause is settled
            agreed = max(agreed, sum(1 for w in candidates if w.start < speech_end))
        horizon = self.now - self.config.confirm_after_secs
        if self.now - self._buffer_start > self.config.max_buffer_secs:
            horizon = max(horizon, self.now - 2 * self.config.interval_secs)
        while agreed < len(candidates) and candidates[agreed].end <= horizon:
            agreed += 1
        return candidates[:agreed]

    # --- output --------------------------------------------------------------------------------

    def _final_segments(self, words: list[Word]) -> list[TranscriptionSegment]:
        if not words:
            return []
        start = max(words[0].start, self._confirmed_until)
        words = [Word(w.text, max(w.start, start), max(w.end, w.start, start), w.probability) for w in words]
        self._in_buffer += words
        self._confirmed_until = words[-1].end
        probabilities = [w.probability for w in words if w.probability is not None]
        return [
            TranscriptionSegment(
                text=join_words(words),
                start_time=words[0].start,
                end_time=words[-1].end,
                is_final=True,
                confidence=float(np.mean(probabilities)) if probabilities else None,
                words=words,
            )
        ]

    def _partial_segments(self, words: list[Word]) -> list[TranscriptionSegment]:
        text = join_words(words) if self.config.partials else ""
        if text == self._partial_shown:
            return []
        self._partial_shown = text
        start = words[0].start if words and text else self.now
        end = words[-1].end if words and text else self.now
        shown = words if text else []
        return [TranscriptionSegment(text=text, start_time=start, end_time=end, is_final=False, words=shown)]

    # --- the buffer ----------------------------------------------------------------------------

    def _trim(self) -> None:
        """Keep the audio before the newest words (it makes passes better), but once the buffer
        is longer than `trim_secs`, cut it at the latest clean place: after a final word that
        ends a sentence or precedes a pause, or after everything when all is final and quiet."""
        length = self.now - self._buffer_start
        if length <= self.config.trim_secs:
            return
        if cuts := self._clean_cuts():
            self._cut(cuts[-1])
        elif length > self.config.max_buffer_secs:
            if self._in_buffer:
                self._cut(self._boundary_after(len(self._in_buffer) - 1))
            else:
                self._cut(self.now - self.config.max_buffer_secs / 2)  # nothing final to keep: drop the oldest

    def _clean_cuts(self) -> list[float]:
        cuts = []
        if self._timed:  # word times are only good enough to cut between words when the engine gave them
            for i, word in enumerate(self._in_buffer):
                paused = not self._speech(word.end + FRAME_SECS, word.end + self.config.pause_secs).any()
                if SENTENCE_END.search(word.text) or paused:
                    cuts.append(self._boundary_after(i))
        if not self._previous and self.now - self._speech_end() >= self.config.pause_secs:
            cuts.append(max(self._confirmed_until, self.now - 0.2))  # all final, and the speaker is silent
        return cuts

    def _boundary_after(self, i: int) -> float:
        """A cut point after final word `i`: half way to the next word, never into it."""
        following = (self._in_buffer[i + 1 :] + self._previous)[:1]
        end = self._in_buffer[i].end
        return end if not following else min((end + following[0].start) / 2, following[0].start)

    def _drop_silence(self) -> None:
        """Nothing unconfirmed is being said: keep a little of the silence before the next speech,
        and earlier speech as context unless the silence has gone on for `trim_secs`."""
        long_silence = self.now - self._speech_end() > self.config.trim_secs
        if (long_silence or not self._in_buffer) and self.now - self._buffer_start > 1.0:
            self._cut(max(self._confirmed_until, self.now - 0.5))

    def _cut(self, at: float) -> None:
        at = min(max(at, self._buffer_start), self.now)
        drop = round((at - self._buffer_start) * SAMPLE_RATE)
        if drop <= 0:
            return
        self._audio = self._audio[drop:]
        self._buffer_start += drop / SAMPLE_RATE
        keep = [w for w in self._in_buffer if w.end > self._buffer_start + 0.01]
        self._context = (self._context + [w for w in self._in_buffer if w not in keep])[-_CONTEXT_WORDS:]
        self._in_buffer = keep
        first_frame = int(self._buffer_start / FRAME_SECS)
        if first_frame > self._probs_start:
            self._probs = self._probs[first_frame - self._probs_start :]
            self._probs_start = first_frame
