"""One offline pass over a whole recording: the best transcript a model gives.

The recording is read in windows of at most `MAX_WINDOW_SECS` (the size the models do best
on), each ending at the quietest place of its second half, and each window is transcribed
by the same engine, with the same decoding, that live sessions use, with the text before
it as the prompt. Where the decoder stops before the speech does, the next window starts
from its last word.
Words are kept where the VAD heard speech and decoder loops are cut, as in the streaming
policy, so the two differ only by what streaming itself does.

`transcribe` is what `manage.py transcribe` prints, what a session's `final` transcript
is, and the yardstick the streaming policy is tested against.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from models_app.batching import BACKGROUND, BatchRunner
from models_app.engines.base import PassRequest
from models_app.policy import (
    CONTEXT_WORDS,
    SPEECH_THRESHOLD,
    Span,
    heard,
    join_words,
    samples_of,
    spans_of,
    speech_runs_of,
    without_loops,
)
from models_app.streaming import SAMPLE_RATE, Word
from models_app.vad import FRAME, StreamingVad, speech_mask

log = logging.getLogger(__name__)

MAX_WINDOW_SECS = 24.0  # under Whisper's 30 s window with room for its trailing second; Parakeet's sweet spot
EDGE = SAMPLE_RATE // 5  # silence kept before a window's speech
MAX_WORD = 2 * SAMPLE_RATE  # a "word" over this much speech is speech the decoder skipped
VAD_BLOCK = SAMPLE_RATE * 60  # the VAD reads a long recording a minute at a time


def speech_of(audio: np.ndarray) -> np.ndarray:
    """The VAD's speech probability of each 512-sample frame of a whole recording.

    audio: [samples] -> [samples // 512]
    """
    vad = StreamingVad()
    probs = [vad.push(audio[i : i + VAD_BLOCK]) for i in range(0, len(audio), VAD_BLOCK)]
    return np.concatenate([np.zeros(0, np.float32), *probs])


def window_end(probs: np.ndarray, seek: int, total: int, max_samples: int) -> int:
    """Where a window that starts at `seek` should end: the recording's end if it is near,
    else the quietest frame of the window's second half (a pause, where there is one)."""
    if total - seek <= max_samples:
        return total
    first, last = (seek + max_samples // 2) // FRAME, (seek + max_samples) // FRAME
    quietest = first + int(np.argmin(probs[first:last]))
    return quietest * FRAME + FRAME // 2


def first_skip(words: list[Span], speech_end: int, runs: Callable[[int, int], list[tuple[int, int]]]) -> int | None:
    """The first word after which the decoder skipped speech, or None.

    Whisper sometimes jumps over a sentence on long windows: it stops before the speech
    does, or stretches one word over seconds of speech it did not transcribe. The words
    from there on are transcribed again, from a window that starts at that word.
    """
    for i, word in enumerate(words):
        spoken = sum(b - a for a, b in runs(word.start, word.end))
        if word.end - word.start > MAX_WORD and spoken > MAX_WORD // 2:
            return i
    if len(words) > 1 and words[-1].end < speech_end - SAMPLE_RATE:
        return len(words) - 1  # stopped early; its last word may have been cut short
    return None


def transcribe(
    runner: BatchRunner,
    audio: np.ndarray,
    language: str | None = None,
    target_language: str | None = None,
    priority: int = BACKGROUND,
    progress: Callable[[float], None] | None = None,
) -> list[Word]:
    """The words of a whole recording, in seconds of it.

    audio: [samples] float32, 16 kHz mono. `progress` hears the fraction done after each chunk.
    """
    audio = np.asarray(audio, np.float32).reshape(-1)
    total = len(audio)
    probs = speech_of(audio)
    mask = speech_mask(probs, SPEECH_THRESHOLD)

    def runs(a: int, b: int) -> list[tuple[int, int]]:
        return speech_runs_of(mask, 0, a, b, total)

    words: list[Span] = []
    seek, windows = 0, 0
    while seek < total:
        end = window_end(probs, seek, total, samples_of(MAX_WINDOW_SECS))
        speech = runs(seek, end)
        if not speech:
            seek = end
            continue
        start = max(speech[0][0] - EDGE, seek)
        windows += 1
        result = runner.run(
            PassRequest(
                audio=audio[start:end],
                language=language,
                target_language=target_language,
                context=join_words(words[-CONTEXT_WORDS:]),
            ),
            priority=priority,
        )
        floor = words[-1].end if words else 0
        spans = [
            Span(w.text, max(w.start, floor), max(w.end, floor), w.probability)
            for w in spans_of(result, start, end, speech)
        ]
        spans = without_loops(heard(spans, runs))
        seek = end
        if result.timed and (skipped := first_skip(spans, speech[-1][1], runs)) is not None:
            resume = (spans[skipped - 1].end + spans[skipped].start) // 2 if skipped else spans[0].start
            if resume > start + SAMPLE_RATE:
                spans, seek = spans[:skipped], resume
            else:  # too near the window's start to begin again there: keep the word, to the first pause in it
                word = spans[skipped]
                pause = runs(word.start, word.end)[0][1]
                spans = [*spans[:skipped], Span(word.text, word.start, min(word.end, pause), word.probability)]
                seek = max(pause, start + SAMPLE_RATE)
        words += spans
        if progress is not None:
            progress(seek / total)
    log.debug("offline pass: %d windows, %d words, %.1f s", windows, len(words), total / SAMPLE_RATE)
    return [w.word() for w in words]
