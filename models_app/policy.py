"""Live subtitles from offline models: the streaming policy shared by every engine.

The promise: the final text is what the same model says about the same audio offline,
delivered early; no word comes out twice and none is lost. How it is kept:

* One `Timeline` per stream owns the audio buffer, the VAD, the committed (final) words
  and the latest guess, all in exact sample positions.
* Every `interval_secs` of media time while there is unconfirmed speech, the buffer is
  transcribed again. Engines that can (Whisper) continue from the committed words as a
  forced prefix and return only what follows; for the others the pass is aligned to the
  committed words by text, and only what follows them counts.
* A word of the guess becomes final when two consecutive passes agree on it and at least
  `right_context_secs` of audio followed it (LocalAgreement-2), or when a pause of
  `pause_secs` (VAD) follows it, or once it ended `confirm_after_secs` before the newest
  audio. Finals are never retracted; the rest is the partial.
* The buffer keeps earlier speech as context and is cut only between words: at a
  committed sentence end or pause once it passes `trim_secs`, after the last final word
  once it passes `max_buffer_secs`, and in the silence after everything is final. While
  the stream's passes wait for other streams' (it is `busy`), a pass costs about its
  buffer's length: the buffer is cut at half `trim_secs`, between any two final words.
* Silence and music never reach the model (Silero VAD), words placed where nobody spoke
  are dropped, and decoder loops are cut before agreement is looked for.
"""

from __future__ import annotations

import difflib
import itertools
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models_app.engines.base import PassRequest, PassResult
from models_app.scheduler import PassScheduler
from models_app.streaming import (
    SAMPLE_RATE,
    StreamingTranscriber,
    TranscriptionChunk,
    TranscriptionSegment,
    Word,
)
from models_app.vad import FRAME, StreamingVad, speech_mask

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
    partials: bool = True  # send partials (a stretched stream sends none meanwhile)


PRESETS: dict[str, PolicyConfig] = {
    "low_latency": PolicyConfig(
        "low_latency",
        interval_secs=0.3,
        pause_secs=0.35,
        confirm_after_secs=1.2,
        max_buffer_secs=15.0,
        right_context_secs=0.4,
        trim_secs=8.0,
        min_speech_secs=0.8,
    ),
    "balanced": PolicyConfig(
        "balanced",
        interval_secs=0.5,
        pause_secs=0.5,
        confirm_after_secs=1.5,
        max_buffer_secs=20.0,
        right_context_secs=0.5,
        trim_secs=8.0,
        min_speech_secs=1.0,
    ),
    "accurate": PolicyConfig(
        "accurate",
        interval_secs=1.0,
        pause_secs=0.8,
        confirm_after_secs=4.0,
        max_buffer_secs=25.0,
        right_context_secs=1.0,
        trim_secs=14.0,
        min_speech_secs=1.0,
    ),
}
DEFAULT_PRESET = "balanced"

SENTENCE_END = re.compile(r"[.!?…。！？]['\")\]]*$")
CONTEXT_WORDS = 40  # committed words before the buffer kept as the prompt for the next passes
SPEECH_THRESHOLD = 0.5
LOOP_SAMPLES_PER_WORD = SAMPLE_RATE * 6 // 100  # a repeated phrase squeezed into less than 60 ms a word is a loop
CUT_PAUSE = SAMPLE_RATE // 4  # a gap this long after a final word is a clean place to cut the buffer
DOUBT = 0.5  # a word the model gives less than this probability is final only by age, and later
DOUBT_WAIT = SAMPLE_RATE  # how much later
REWIND = SAMPLE_RATE // 2  # a new word that ends this long before the committed ones is the pass going back
# A pass that began this many intervals after it was due waited for other streams' passes: the
# shared model is busy (the buffer is kept short), or, at STRETCHED, overloaded (no partials either).
BUSY, STRETCHED = 1, 3
CALM = 5 * SAMPLE_RATE  # after a late pass, the stream is busy or stretched for this much audio more
KEEP_QUIET = SAMPLE_RATE // 2  # cutting in silence keeps this much of the newest audio (onsets the VAD missed)


def samples_of(seconds: float) -> int:
    """Seconds as a sample count: positions are counted in samples, seconds are for people."""
    return round(seconds * SAMPLE_RATE)


def normalise(text: str) -> str:
    """A word as passes are compared: case and punctuation do not count."""
    return re.sub(r"[^\w']+", "", text.lower())


@dataclass(frozen=True)
class Span:
    """A word on a stream's timeline: its text as the model wrote it, [start, end) in samples."""

    text: str
    start: int
    end: int
    probability: float | None = None

    @property
    def key(self) -> str:
        return normalise(self.text)

    @property
    def middle(self) -> int:
        return (self.start + self.end) // 2

    def word(self) -> Word:
        return Word(self.text, self.start / SAMPLE_RATE, self.end / SAMPLE_RATE, self.probability)


def join_words(words: list[Span] | list[Word]) -> str:
    """Words as text; each word's text carries its own leading space where it starts a word."""
    return "".join(w.text for w in words).strip()


def without_loops(words: list[Span]) -> list[Span]:
    """The words up to where the hypothesis starts looping.

    A decoder caught in a loop says words with no audio behind them, which the aligner
    squeezes into a sliver of time: often the text it was given as its prefix, again. So
    the hypothesis ends where three or more words in a row share less than 60 ms a word,
    or where a phrase is said again in such a sliver; squeezed words just before that
    point belong to the loop too. People repeat themselves ("Try again. Fail again.";
    "Hello? Hello? Hello?"), but each copy is spoken; only a phrase coming a fourth time
    in a row is taken for a loop whatever its times.
    """
    keys = [w.key for w in words]
    for end in range(1, len(words) + 1):
        for n in range(1, end + 1):
            squeezed = _squeezed(words[end - n : end])
            if squeezed and n >= 3:
                return _before_squeezed(words, end - n)
            if 2 * n > end or keys[end - 2 * n : end - n] != keys[end - n : end]:
                continue
            phrase = keys[end - n : end]
            fourth = end >= 4 * n and keys[end - 4 * n : end - 3 * n] == phrase == keys[end - 3 * n : end - 2 * n]
            if squeezed or fourth:
                return _before_squeezed(words, end - n)
    return words


def _squeezed(words: list[Span]) -> bool:
    return words[-1].end - words[0].start < len(words) * LOOP_SAMPLES_PER_WORD


def _before_squeezed(words: list[Span], cut: int) -> list[Span]:
    """words[:cut], less the squeezed words that lead into the loop at `cut`."""
    while (
        cut > 0 and _squeezed(words[cut - 1 : cut]) and words[cut - 1].start >= words[cut].start - LOOP_SAMPLES_PER_WORD
    ):
        cut -= 1
    return words[:cut]


def spans_of(result: PassResult, start: int, end: int, runs: list[tuple[int, int]]) -> list[Span]:
    """A pass's words in samples of media time: its audio began at sample `start` and ended
    by `end`; untimed words are placed over the stretches of speech `runs`."""
    if not result.timed:
        return placed_over_speech(result.words, runs, start)
    return [
        Span(
            w.text,
            min(start + samples_of(w.start), end),
            min(start + samples_of(max(w.end, w.start)), end),
            w.probability,
        )
        for w in result.words
    ]


def placed_over_speech(words: list[Word], runs: list[tuple[int, int]], floor: int) -> list[Span]:
    """Times for untimed words: spread over the stretches of speech `runs` by their length,
    each within one stretch (never across a pause), none before sample `floor`."""
    if not words:
        return []
    runs = runs or [(floor, floor)]
    # the speech as one axis: position p of it lies in the run where the lengths add up to p
    lengths = np.array([end - start for start, end in runs])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    weights = np.array([max(len(w.text.strip()), 1) for w in words], float)
    edges = np.round(np.concatenate([[0.0], np.cumsum(weights) / weights.sum()]) * offsets[-1]).astype(int)
    placed: list[Span] = []
    for i, word in enumerate(words):
        a, b = int(edges[i]), int(edges[i + 1])
        k = int(np.argmax([min(b, offsets[k + 1]) - max(a, offsets[k]) for k in range(len(runs))]))  # most of it
        run_start, run_end = runs[k]
        start = max(run_start + max(a - int(offsets[k]), 0), placed[-1].end if placed else floor)
        end = run_start + min(b - int(offsets[k]), int(lengths[k]))
        placed.append(Span(word.text, start, max(min(end, run_end), start), word.probability))
    return placed


def heard(words: list[Span], speech_runs: Callable[[int, int], list[tuple[int, int]]]) -> list[Span]:
    """Words where the VAD heard speech, their edges pulled in to it; the others dropped.

    Models invent words on silence, and aligners stretch a word over the silence beside
    it: neither may reach the transcript or its times. `speech_runs(a, b)` gives the
    stretches of speech overlapping samples [a, b).
    """
    kept = []
    for word in words:
        runs = speech_runs(word.start - FRAME, max(word.end, word.start + 1) + FRAME)
        if not runs:
            continue
        start = max(word.start, runs[0][0])
        end = min(max(word.end, start), runs[-1][1])
        kept.append(Span(word.text, start, max(end, start), word.probability))
    return kept


def speech_runs_of(mask: np.ndarray, first_frame: int, a: int, b: int, total: int) -> list[tuple[int, int]]:
    """The stretches of speech of a frame mask (frame `first_frame` first) that overlap
    samples [a, b), as [start, end) sample pairs, none past `total`."""
    first = max(a // FRAME, first_frame)
    last = min(-(-b // FRAME), first_frame + len(mask))
    if last <= first:
        return []
    part = mask[first - first_frame : last - first_frame].astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], part, [0]])))
    return [(int((first + s) * FRAME), min(int((first + e) * FRAME), total)) for s, e in edges.reshape(-1, 2)]


class Timeline:
    """One stream's audio, speech and words, in exact sample positions.

        0 ........ start ................ committed_end ................ total
        | context  | the buffer (audio[0] is sample `start`)                  |
                   | committed words       | pending words (the latest guess) |

    Invariants (`check()`):
    * 0 <= start <= total and len(audio) == total - start;
    * committed words are in order and never overlap, and none is ever changed or taken
      back; those that ended before `start` have moved to `context` (their text is the
      prompt for the next passes);
    * committed_end, the end of the last committed word, never decreases;
    * pending words are in order and start at or after committed_end;
    * the VAD covers every whole 512-sample frame from the one holding `start`.
    """

    def __init__(self) -> None:
        self.vad = StreamingVad()
        self.audio = np.zeros(0, np.float32)
        self.start = 0
        self.total = 0
        self.committed: list[Span] = []
        self.context: list[Span] = []
        self.committed_end = 0
        self.pending: list[Span] = []
        self._probs = np.zeros(0, np.float32)  # VAD speech probability of each frame from `_first_frame`
        self._first_frame = 0
        self._mask = np.zeros(0, bool)  # speech frames (padded), from `_first_frame`

    def append(self, samples: np.ndarray) -> None:
        self.audio = np.concatenate([self.audio, samples])
        self.total += len(samples)
        self._probs = np.concatenate([self._probs, self.vad.push(samples)])
        self._mask = speech_mask(self._probs, SPEECH_THRESHOLD)

    # --- speech ---------------------------------------------------------------------------

    def speech_runs(self, a: int, b: int) -> list[tuple[int, int]]:
        """The stretches of speech overlapping samples [a, b), as [start, end) sample pairs."""
        return speech_runs_of(self._mask, self._first_frame, a, b, self.total)

    def speech_between(self, a: int, b: int) -> int:
        """Samples of speech in [a, b), counted in whole VAD frames."""
        return sum(end - start for start, end in self.speech_runs(a, b))

    def speech_end(self) -> int:
        """Where the last speech in the buffer ends (the buffer's start if there is none)."""
        runs = self.speech_runs(self.start, self.total)
        return runs[-1][1] if runs else self.start

    def unconfirmed_speech(self) -> int:
        return self.speech_between(max(self.committed_end, self.start), self.total)

    # --- words ----------------------------------------------------------------------------

    def commit(self, words: list[Span]) -> list[Span]:
        """Make `words` final, in order after what already is; returns them as committed."""
        done = []
        for word in words:
            start = max(word.start, self.committed_end)
            span = Span(word.text, start, max(word.end, start), word.probability)
            self.committed.append(span)
            self.committed_end = span.end
            done.append(span)
        return done

    def guess(self, words: list[Span]) -> None:
        """The latest pass's words after the committed ones, kept for the next agreement."""
        self.pending = []
        for word in words:
            start = max(word.start, self.committed_end, self.pending[-1].end if self.pending else 0)
            self.pending.append(Span(word.text, start, max(word.end, start), word.probability))

    def cut(self, at: int) -> None:
        """Drop the audio before sample `at`; committed words that ended there become context."""
        at = min(max(at, self.start), self.total)
        if at <= self.start:
            return
        self.audio = self.audio[at - self.start :]
        self.start = at
        gone = 0
        while gone < len(self.committed) and self.committed[gone].end <= at:
            gone += 1
        self.context = (self.context + self.committed[:gone])[-CONTEXT_WORDS:]
        self.committed = self.committed[gone:]
        frame = at // FRAME
        if frame > self._first_frame:
            self._probs = self._probs[frame - self._first_frame :]
            self._mask = speech_mask(self._probs, SPEECH_THRESHOLD)
            self._first_frame = frame

    def check(self) -> None:
        """Assert the invariants of the class docstring (for the tests)."""
        assert 0 <= self.start <= self.total and len(self.audio) == self.total - self.start
        words = self.context[-1:] + self.committed
        assert all(a.end <= b.start and a.start <= a.end for a, b in itertools.pairwise(words))
        assert not self.committed or self.committed[-1].end == self.committed_end
        assert all(w.end > self.start for w in self.committed)
        assert all(w.start >= self.committed_end for w in self.pending)
        assert self._first_frame <= self.start // FRAME
        assert self._first_frame + len(self._probs) == self.total // FRAME


@dataclass(frozen=True)
class Pass:
    """A pass begun: the request sent, and the part of the timeline it saw, [start, seen)."""

    request: PassRequest
    start: int
    seen: int
    final: bool


class StreamingPolicy(StreamingTranscriber):
    """One session's stream over a shared engine.

    Two ways to drive it. `push_audio` runs a due pass at once through the engine's runner
    and returns what it found (the command line, the tests, the benchmarks). Once
    `schedule()` is called, `push_audio` only takes the audio: the model's pass scheduler
    (`models_app.scheduler`) runs this stream's passes when they are due, in batches with
    other streams', and `collect()` hands over what they found. Both ways share every rule.
    """

    def __init__(
        self,
        runner: PassScheduler,
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
        self.scheduled = False
        self._lock = threading.Condition()  # the timeline is shared by the feeding and the inference threads
        self.reset()

    # --- the interface ------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.timeline = Timeline()
            self._last_pass: int | None = None  # sample position of the last pass
            self._partial_shown = ""
            self._in_flight = False
            self._due_at: int | None = None  # the sample at which the next pass became due
            self._busy_until = 0  # passes came late: a short buffer until this sample...
            self._stretched_until = 0  # ...and no partials until this one
            self._found: list[TranscriptionChunk] = []  # what scheduled passes found, not yet collected
            self._failure: BaseException | None = None

    def push_audio(self, samples: np.ndarray) -> TranscriptionChunk:
        with self._lock:
            timeline = self.timeline
            timeline.append(np.asarray(samples, np.float32).reshape(-1))
            chunk = TranscriptionChunk()
            if self._interval_passed() and not self._in_flight and not self._unconfirmed():
                chunk = TranscriptionChunk(self._partial_segments([]))
                self._rest()
            due = self.due() is not None
        if due and self.scheduled:
            self.runner.wake()
            return chunk
        if due:
            return merged([chunk, self._run(self.begin_pass())])
        return chunk

    def finalize(self) -> TranscriptionChunk:
        self.close()
        with self._lock:
            while self._in_flight:  # a scheduled pass is running: its words come first
                self._lock.wait()
            found = self._take_found()
            pending = self.timeline.pending or self.timeline.unconfirmed_speech()
        if pending:
            chunk = self._run(self.begin_pass(final=True))
        else:
            with self._lock:
                chunk = TranscriptionChunk(self._partial_segments([]))
        chunk = merged([found, chunk])
        chunk.is_final = True
        return chunk

    @property
    def now(self) -> float:
        """Media time of the newest sample, in seconds."""
        return self.timeline.total / SAMPLE_RATE

    # --- scheduled passes ----------------------------------------------------------------------

    def schedule(self) -> None:
        """From now on the runner's scheduler runs this stream's passes; `collect()` gives their words."""
        self.scheduled = True
        self.runner.add(self)

    def close(self) -> None:
        """No more passes for this stream."""
        if self.scheduled:
            self.runner.remove(self)

    def collect(self) -> TranscriptionChunk:
        """What the scheduled passes found since the last call; raises what failed one (PassFailed)."""
        with self._lock:
            return self._take_found()

    def due(self) -> float | None:
        """None if no pass is due now; else how urgent it is: the age, in seconds of media time,
        of the oldest audio whose words are not final (older goes first)."""
        with self._lock:
            timeline = self.timeline
            if not self._interval_passed():
                return None
            if not timeline.pending and timeline.unconfirmed_speech() < samples_of(self.config.min_speech_secs):
                return None  # nothing, or too little of a new utterance yet: models guess wildly on a syllable
            if self._due_at is None:
                self._due_at = timeline.total  # (while the last pass still runs, too: it is late from here)
            if self._in_flight:
                return None
            return self._unconfirmed_age()

    def begin_pass(self, final: bool = False) -> Pass:
        """The request for a pass over the buffer as it is now."""
        with self._lock:
            timeline = self.timeline
            self._in_flight = True
            if self._due_at is not None:
                late = (timeline.total - self._due_at) / samples_of(self.config.interval_secs)
                if late > BUSY:
                    self._busy_until = timeline.total + CALM
                if late > STRETCHED:
                    self._stretched_until = timeline.total + CALM
            self._due_at = None
            self._last_pass = timeline.total
            self.passes += 1
            request = PassRequest(
                audio=timeline.audio,
                language=self.language,
                target_language=self.target_language,
                context=join_words(timeline.context),
                prefix=join_words(timeline.committed) if self.supports_prefix else "",
            )
            return Pass(request, timeline.start, timeline.total, final)

    def end_pass(self, begun: Pass, result: PassResult | BaseException) -> TranscriptionChunk:
        """Apply a pass's result to the timeline; what became known. A failure is kept for `collect()`."""
        with self._lock:
            try:
                if isinstance(result, BaseException):
                    self._failure = result
                    return TranscriptionChunk()
                chunk = self._apply(begun, result)
                if self.scheduled and not begun.final:
                    self._found.append(chunk)
                return chunk
            finally:
                self._in_flight = False
                self._lock.notify_all()

    def _run(self, begun: Pass) -> TranscriptionChunk:
        try:
            result = self.runner.run(begun.request)
        except BaseException as exc:
            self.end_pass(begun, exc)
            raise
        return self.end_pass(begun, result)

    def _take_found(self) -> TranscriptionChunk:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        found, self._found = self._found, []
        return merged(found)

    def _interval_passed(self) -> bool:
        return self._last_pass is None or self.timeline.total - self._last_pass >= samples_of(self.config.interval_secs)

    def _unconfirmed(self) -> bool:
        return bool(self.timeline.pending or self.timeline.unconfirmed_speech())

    def _unconfirmed_age(self) -> float:
        """Seconds of audio since the last final word (or the buffer's start)."""
        timeline = self.timeline
        return (timeline.total - max(timeline.committed_end, timeline.start)) / SAMPLE_RATE

    @property
    def behind_secs(self) -> float:
        """How far the final words are behind the newest audio, when words are waiting to be final."""
        return self._unconfirmed_age() if self._unconfirmed() else 0.0

    @property
    def confirm_secs(self) -> float:
        """The longest a word heard waits to be final when its passes come on time (for admission control)."""
        return self.config.confirm_after_secs

    @property
    def busy(self) -> bool:
        """Its passes wait for other streams': every pass counts, and costs about its buffer's length."""
        return self.timeline.total < self._busy_until

    @property
    def stretched(self) -> bool:
        """Its passes come late (the model is shared by more streams than it keeps up with):
        for now it sends no partials, which passes this far apart would only make stale."""
        return self.timeline.total < self._stretched_until

    # --- one pass ------------------------------------------------------------------------------

    def _apply(self, begun: Pass, result: PassResult) -> TranscriptionChunk:
        timeline = self.timeline
        words = spans_of(result, begun.start, begun.seen, timeline.speech_runs(begun.start, begun.seen))
        if not result.continues_prefix:
            words = self._after_committed(words)
        words = heard(without_loops(self._going_forward(words)), timeline.speech_runs)
        settled = len(words) if begun.final else self._settled(words, begun.seen)
        committed = timeline.commit(words[:settled])
        timeline.guess(words[settled:])
        segments = self._final_segments(committed) + self._partial_segments(timeline.pending)
        self._trim(result.timed)
        return TranscriptionChunk(segments)

    def _after_committed(self, words: list[Span]) -> list[Span]:
        """The part of a whole-buffer pass that follows the committed words.

        The pass is aligned to the committed words by their text; what follows the last one
        it matched is new. A pass that changed its mind about the last committed words
        still gives them again, so words that lie before the committed end are dropped too.
        """
        committed = self.timeline.committed
        if committed:
            matcher = difflib.SequenceMatcher(None, [w.key for w in committed], [w.key for w in words], autojunk=False)
            blocks = [b for b in matcher.get_matching_blocks() if b.size]
            if blocks and blocks[-1].a + blocks[-1].size >= len(committed) - 2:
                words = words[blocks[-1].b + blocks[-1].size :]
        end = self.timeline.committed_end
        return [w for w in words if w.middle > end or w.start >= end]

    def _going_forward(self, words: list[Span]) -> list[Span]:
        """The words up to where the pass goes back in time.

        New words follow the committed ones, and each other. A pass whose words jump back
        to audio before them is saying that audio again (a decoder restarting, or looping
        over its prefix), and ends there.
        """
        floor = self.timeline.committed_end - REWIND
        for i, word in enumerate(words):
            if word.end < floor or (i and word.start < words[i - 1].start - REWIND):
                return words[:i]
        return words

    def _settled(self, words: list[Span], seen: int) -> int:
        """How many of the pass's new words are final now (the rules of the module docstring);
        the pass heard the audio up to sample `seen`."""
        timeline, config = self.timeline, self.config
        agreed = 0
        settled_at = seen - samples_of(config.right_context_secs)
        for new, old in zip(words, timeline.pending, strict=False):
            if new.key != old.key or new.end > settled_at:
                break
            agreed += 1
        # a pause the VAD heard settles every word before it
        pause_from = self._last_pause(seen)
        if pause_from is not None:
            agreed = max(agreed, sum(1 for w in words if w.middle < pause_from))
        # a word the model itself doubts waits for more of what follows it, and ages `DOUBT_WAIT` longer
        doubted = next((i for i, w in enumerate(words) if w.probability is not None and w.probability < DOUBT), None)
        if doubted is not None:
            agreed = min(agreed, doubted)
        horizon = seen - samples_of(config.confirm_after_secs)
        doubted_horizon = horizon - DOUBT_WAIT
        if seen - timeline.start > samples_of(config.max_buffer_secs):
            horizon = doubted_horizon = max(horizon, seen - 2 * samples_of(config.interval_secs))
        while agreed < len(words):
            word = words[agreed]
            doubtful = word.probability is not None and word.probability < DOUBT
            if word.end > (doubted_horizon if doubtful else horizon):
                break
            agreed += 1
        return agreed

    def _last_pause(self, seen: int) -> int | None:
        """Where the latest pause of at least `pause_secs` after the committed words, and before
        sample `seen`, starts."""
        timeline = self.timeline
        pause = samples_of(self.config.pause_secs)
        runs = timeline.speech_runs(max(timeline.committed_end, timeline.start), seen)
        if runs and seen - runs[-1][1] >= pause:
            return runs[-1][1]
        for (_, end), (start, _) in zip(reversed(runs[:-1]), reversed(runs[1:]), strict=True):
            if start - end >= pause:
                return end
        return None

    # --- output --------------------------------------------------------------------------------

    def _final_segments(self, spans: list[Span]) -> list[TranscriptionSegment]:
        if not spans:
            return []
        words = [s.word() for s in spans]
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

    def _partial_segments(self, spans: list[Span]) -> list[TranscriptionSegment]:
        text = join_words(spans) if self.config.partials and not self.stretched else ""
        if text == self._partial_shown:
            return []
        self._partial_shown = text
        words = [s.word() for s in spans] if text else []
        start = words[0].start if words else self.now
        end = words[-1].end if words else self.now
        return [TranscriptionSegment(text=text, start_time=start, end_time=end, is_final=False, words=words)]

    # --- the buffer ----------------------------------------------------------------------------

    def _trim(self, timed: bool) -> None:
        """Keep the audio before the newest words (it makes passes better), but once the buffer
        is longer than `trim_secs`, cut it at the latest clean place.

        Cuts fall between two committed words, never between the committed and the
        pending ones: the words after a cut are then all in the buffer's prefix (or, for
        engines without one, matched by text), so a word whose time the aligner got wrong
        can never lose its audio before it is final.
        """
        timeline = self.timeline
        length = timeline.total - timeline.start
        if length <= self._trim_samples():
            return
        cut = self._clean_cut(timed)
        if cut is None and length > samples_of(self.config.max_buffer_secs):
            if timeline.committed:  # keep the last final word as the anchor of what follows
                cut = timeline.committed[-1].start
            else:  # nothing final to keep: drop the oldest half
                cut = timeline.total - samples_of(self.config.max_buffer_secs / 2)
        if cut is not None:
            timeline.cut(cut)

    def _trim_samples(self) -> int:
        """`trim_secs`; halved while the stream is busy (see the module docstring)."""
        return samples_of(self.config.trim_secs / (2 if self.busy else 1))

    def _clean_cut(self, timed: bool) -> int | None:
        timeline = self.timeline
        if not timeline.pending and timeline.total - timeline.speech_end() >= samples_of(self.config.pause_secs):
            return max(timeline.committed_end, timeline.total - KEEP_QUIET)  # all final, and the speaker is silent
        if not timed:  # untimed words are placed, not heard: only their pauses are safe to cut at
            return None
        # the earliest clean place that brings the buffer under `trim_secs` (the pending words keep as
        # much context as they can: cut a sentence before them and the model mishears them), else the latest
        cuts = []
        busy = self.busy  # a busy model: any place between two final words will do
        for word, following in itertools.pairwise(timeline.committed):
            paused = not timeline.speech_between(word.end + FRAME, following.start)
            if busy or SENTENCE_END.search(word.text) or (paused and following.start - word.end >= CUT_PAUSE):
                cuts.append((word.end + following.start) // 2)
        enough = [cut for cut in cuts if timeline.total - cut <= self._trim_samples()]
        return enough[0] if enough else (cuts[-1] if cuts else None)

    def _rest(self) -> None:
        """Nothing unconfirmed is being said: keep a little of the silence before the next speech,
        and earlier speech as context unless the silence has gone on for `trim_secs`."""
        timeline = self.timeline
        long_silence = timeline.total - timeline.speech_end() > samples_of(self.config.trim_secs)
        if (long_silence or not timeline.committed) and timeline.total - timeline.start > SAMPLE_RATE:
            timeline.cut(max(timeline.committed_end, timeline.total - KEEP_QUIET))


def merged(chunks: list[TranscriptionChunk]) -> TranscriptionChunk:
    """Several chunks as one: every final in order, and the latest partial."""
    finals = [s for chunk in chunks for s in chunk.finals]
    partials = [chunk.partial for chunk in chunks if chunk.partial is not None]
    return TranscriptionChunk(finals + partials[-1:], is_final=any(c.is_final for c in chunks))
