"""Who speaks when, live, beside every session's speech model.

    speakers = diarization.create_stream()   # None where it is not installed
    speakers.push(samples)                   # the same audio the speech stream gets
    speakers.covered_secs                    # how far the speakers are known
    speakers.timeline.speaker(start, end)    # the most active speaker over a span, or None
    speakers.finish(); speakers.close()

One `Diarizer` per process holds the engine (one InferenceSession) and one thread that
runs every stream's due steps, the stream furthest behind first. `push` only appends the
audio; the features (unnormalised log-mel, computed once per frame) and the model step
run on that thread, so the speech model's intake never waits for the diarizer.

A step is due when its chunk and its look-ahead have arrived (`Setup.latency_secs`, 1.04 s
in the low-latency setup). Each step confirms its chunk's rows of activity; its
look-ahead rows are kept as provisional, for the speaker of a partial.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from models_app.engines.base import ModelFilesError
from models_app.engines.features import HOP, log_mel
from models_app.engines.sortformer import (
    FRAME_SECS,
    N_MELS,
    SETUPS,
    SPEAKERS,
    SUBSAMPLING,
    SortformerEngine,
    SpeakerState,
    missing_files,
)
from models_app.streaming import SAMPLE_RATE, Word

log = logging.getLogger(__name__)

WINDOW_REACH = 200  # samples a feature frame reads past its centre (half the 400-sample window)
MARGIN = 2  # feature frames recomputed before a new range: their windows saw the range's edge
ACTIVE = 0.5  # a speaker's sigmoid above this: they speak in that frame
WIDEN_FRAMES = 3  # a word where nobody is active is looked at again with 240 ms either side
START_WEIGHT, END_WEIGHT = 1.0, 0.5  # a word's frames count less towards its end (see Timeline.speaker)
FINISH_SECS = 60.0  # finish() gives up on a diarizer that cannot catch up in this long
SKIP_AFTER_SECS = 10.0  # a stream this much further behind than its look-ahead skips to the newest (overload)


def frame_at(secs: float) -> int:
    """The 80 ms frame that holds `secs` (12.5 frames a second is exact; a division by 0.08 is not)."""
    return math.floor(secs * 12.5 + 1e-6)


class Timeline:
    """A stream's speaker activity over media time: rows of SPEAKERS per 80 ms frame from 0.

    The diarizer's thread extends it while the session's loop reads it: both under its lock.
    """

    def __init__(self) -> None:
        self._rows = np.zeros((256, SPEAKERS), np.float32)
        self.count = 0  # confirmed rows
        self._provisional = np.zeros((0, SPEAKERS), np.float32)  # the look-ahead's rows after them
        self._lock = threading.Lock()

    @property
    def covered_secs(self) -> float:
        return self.count * FRAME_SECS

    @property
    def rows(self) -> np.ndarray:
        with self._lock:
            return self._rows[: self.count].copy()

    @property
    def provisional(self) -> np.ndarray:
        return self._provisional

    def extend(self, rows: np.ndarray, provisional: np.ndarray) -> None:
        with self._lock:
            if self.count + len(rows) > len(self._rows):
                grown = np.zeros((max(2 * len(self._rows), self.count + len(rows)), SPEAKERS), np.float32)
                grown[: self.count] = self._rows[: self.count]
                self._rows = grown
            self._rows[self.count : self.count + len(rows)] = rows
            self.count += len(rows)
            self._provisional = provisional

    def _span(self, first: int, last: int, provisional: bool) -> np.ndarray:
        """Rows [first, last) as far as they are known (with the look-ahead's, if `provisional`)."""
        with self._lock:
            confirmed = self._rows[max(first, 0) : min(last, self.count)]
            if not provisional or last <= self.count:
                return confirmed.copy()
            ahead = self._provisional[max(first - self.count, 0) : last - self.count]
            return np.concatenate([confirmed, ahead])

    def speaker(self, start: float, end: float, provisional: bool = False) -> int | None:
        """Who speaks [start, end): the speaker with the most activity over the frames where anyone speaks,
        those nearer its start weighing more (a word's end is the less sure of its times: Whisper stretches a
        turn's last word over the silence or the reply after it). None where nobody speaks, even looked at
        WIDEN_FRAMES wider."""
        first = frame_at(start)
        last = max(math.ceil(end * 12.5 - 1e-6), first + 1)
        for reach in (0, WIDEN_FRAMES):
            span = self._span(first - reach, last + reach, provisional)
            speaking = span.max(axis=1, initial=0.0) > ACTIVE
            if speaking.any():
                weights = np.linspace(START_WEIGHT, END_WEIGHT, len(span), dtype=np.float32)
                return int((span[speaking] * weights[speaking, None]).sum(axis=0).argmax())
        return None

    def speakers(self, words: list[Word], previous: int | None = None, provisional: bool = False) -> list[int | None]:
        """Each word's speaker; a word where nobody is active keeps the speaker before it."""
        found = []
        for word in words:
            speaker = self.speaker(word.start, word.end, provisional)
            previous = speaker if speaker is not None else previous
            found.append(previous)
        return found


def runs(words: list[Word], speakers: list[int | None]) -> list[tuple[list[Word], int | None]]:
    """Consecutive words of one speaker, in order: what a cue builder takes at once."""
    found: list[tuple[list[Word], int | None]] = []
    for word, speaker in zip(words, speakers, strict=True):
        if found and found[-1][1] == speaker:
            found[-1][0].append(word)
        else:
            found.append(([word], speaker))
    return found


class SpeakerStream:
    """One session's diarization: its audio, features and state, stepped by the process's Diarizer."""

    def __init__(self, diarizer: Diarizer) -> None:
        self.diarizer = diarizer
        self.setup = diarizer.setup
        self.state = SpeakerState(self.setup)
        self.timeline = Timeline()
        self.error: str | None = None
        self.skipped_secs = 0.0  # audio left undiarized because the diarizer had fallen too far behind
        self.step_secs = 0.0  # wall time in the model's run, in total
        self.own_secs = 0.0  # CPU time of this code around it, in total
        self._lock = threading.Lock()
        self._audio = np.zeros(0, np.float32)
        self._arrived: list[np.ndarray] = []  # pushed, not yet joined to _audio (the thread joins them)
        self._audio_start = 0  # the sample index of _audio[0]
        self._received = 0
        self._ended = False
        self._features = np.zeros((0, N_MELS), np.float32)  # time-major, as the model takes them
        self._features_start = 0  # the frame index of _features[0]
        self._next = 0  # the first model frame not yet diarized
        self._finished = threading.Event()

    @property
    def covered_secs(self) -> float:
        """Media time up to which the speakers are known (everything, once finished or failed)."""
        if self.error is not None or self._finished.is_set():
            return math.inf
        return self.timeline.covered_secs

    @property
    def received_secs(self) -> float:
        return self._received / SAMPLE_RATE

    def push(self, samples: np.ndarray) -> None:
        with self._lock:
            self._arrived.append(np.asarray(samples, np.float32))
            self._received += len(samples)
        self.diarizer.wake()

    def finish(self, timeout: float = FINISH_SECS) -> None:
        """The audio has ended: diarize what is left and wait for it."""
        with self._lock:
            self._ended = True
        self.diarizer.wake()
        if not self._finished.wait(timeout) and self.error is None:
            self.error = f"the diarizer did not catch up within {timeout:.0f} s"
            log.warning("speaker stream: %s; the rest has no speakers", self.error)

    def close(self) -> None:
        self.diarizer.forget(self)

    # --- on the diarizer's thread ---------------------------------------------------------------

    def _available_frames(self) -> int:
        """Feature frames whose windows have all their samples (all of them once the audio has ended)."""
        if self._ended:
            return self._received // HOP
        return min(max((self._received - WINDOW_REACH) // HOP + 1, 0), self._received // HOP)

    def due(self) -> bool:
        if self.error is not None or self._finished.is_set():
            return False
        with self._lock:
            frames = self._available_frames()
            if self._ended:
                return True  # a last step, or the finish
            return frames >= (self._next + self.setup.chunk + self.setup.right) * SUBSAMPLING

    def behind_secs(self) -> float:
        return self.received_secs - self.timeline.covered_secs

    def step(self, engine: SortformerEngine) -> None:
        """One chunk: its features, the model, the state's update, the timeline."""
        cpu = time.thread_time()
        setup = self.setup
        with self._lock:
            available, ended = self._available_frames(), self._ended
        total_rows = math.ceil(available / SUBSAMPLING) if ended else None
        if total_rows is not None and self._next >= total_rows:
            self._finished.set()
            return
        behind = (available / SUBSAMPLING - self._next) * FRAME_SECS - setup.latency_secs  # than it could be
        if not ended and behind > self.diarizer.skip_after_secs:
            self._skip_to(available // SUBSAMPLING - setup.chunk - setup.right)
        first = max(self._next - setup.left, 0)
        end = min((self._next + setup.chunk + setup.right) * SUBSAMPLING, available)
        chunk = self._features_for(first * SUBSAMPLING, end)
        rows = min(setup.chunk, math.ceil(end / SUBSAMPLING) - self._next)
        ran, run_cpu = time.perf_counter(), time.thread_time()
        preds, embeddings = engine.step(chunk, self.state.cache, self.state.fifo)
        self.step_secs += time.perf_counter() - ran
        run_cpu = time.thread_time() - run_cpu
        context = self._next - first
        chunk_rows = self.state.update(preds, embeddings, context, rows)
        ahead = preds[len(preds) - len(embeddings) + context + rows :]
        self.timeline.extend(chunk_rows, ahead)
        self._next += rows
        self._forget_before((self._next - setup.left) * SUBSAMPLING)
        self.own_secs += time.thread_time() - cpu - run_cpu  # CPU time: not the waits for the GIL or the cores
        if total_rows is not None and self._next >= total_rows:
            self._finished.set()

    def _skip_to(self, frame: int) -> None:
        """Fallen too far behind (the machine cannot keep up): the rows before `frame` stay unknown (no
        one speaks there, for the words), and the state carries the speakers on across the gap."""
        gap = frame - self._next
        self.skipped_secs += gap * FRAME_SECS
        log.warning("speaker stream %.1f s behind: skipped %.1f s of audio", self.behind_secs(), gap * FRAME_SECS)
        self.timeline.extend(np.zeros((gap, SPEAKERS), np.float32), np.zeros((0, SPEAKERS), np.float32))
        self._next = frame
        start = (frame - self.setup.left) * SUBSAMPLING
        if start > self._features_start + len(self._features):  # none of the kept features is read again
            self._features = np.zeros((0, N_MELS), np.float32)
            self._features_start = start
        self._forget_before(start)

    def _join_arrived(self) -> None:
        """(under the lock) The pushed pieces joined to the audio."""
        if self._arrived:
            self._audio = np.concatenate([self._audio, *self._arrived])
            self._arrived.clear()

    def _features_for(self, start: int, end: int) -> np.ndarray:
        """Feature frames [start, end) [end - start, 128], each computed once."""
        have = self._features_start + len(self._features)
        if end > have:
            first = max(have - MARGIN, 0)
            with self._lock:
                self._join_arrived()
                stop = min(end * HOP + WINDOW_REACH, self._received)
                audio = self._audio[first * HOP - self._audio_start : stop - self._audio_start]
            frames, _ = log_mel(audio, n_mels=N_MELS, normalize=False)
            skip = have - first
            self._features = np.concatenate([self._features, frames[0].T[skip : skip + end - have]])
        return self._features[start - self._features_start : end - self._features_start]

    def _forget_before(self, frame: int) -> None:
        """Drop features and audio no later step reads: before the next step's left context."""
        drop = max(frame - self._features_start, 0)
        if drop:
            self._features = self._features[drop:]
            self._features_start += drop
        keep_from = max(self._features_start + len(self._features) - MARGIN, 0) * HOP
        with self._lock:
            self._join_arrived()
            drop_samples = keep_from - self._audio_start
            if drop_samples > 0:
                self._audio = self._audio[drop_samples:]
                self._audio_start = keep_from

    def fail(self, error: str) -> None:
        self.error = error
        self._finished.set()


class Diarizer:
    """The process's engine and the one thread that steps every stream."""

    def __init__(
        self, engine: SortformerEngine, setup_name: str = "low", skip_after_secs: float = SKIP_AFTER_SECS
    ) -> None:
        self.engine = engine
        self.setup = SETUPS[setup_name]
        self.skip_after_secs = skip_after_secs  # a stream this much later than its look-ahead skips ahead
        self._streams: list[SpeakerStream] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def stream(self) -> SpeakerStream:
        stream = SpeakerStream(self)
        with self._ready:
            self._streams.append(stream)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="diarizer", daemon=True)
                self._thread.start()
        return stream

    def forget(self, stream: SpeakerStream) -> None:
        with self._ready:
            if stream in self._streams:
                self._streams.remove(stream)

    def wake(self) -> None:
        with self._ready:
            self._ready.notify()

    def close(self) -> None:
        """Stop the thread; its streams get no more steps, and one waiting to finish is told at once."""
        with self._ready:
            self._closed = True
            self._ready.notify()
            for stream in self._streams:
                if not stream._finished.is_set():
                    stream.fail("the diarizer was closed")

    def _loop(self) -> None:
        while True:
            with self._ready:
                if self._closed:
                    return
                due = [s for s in self._streams if s.due()]
                if not due:
                    self._ready.wait(1.0)
                    continue
                stream = max(due, key=SpeakerStream.behind_secs)  # the furthest behind first
            try:
                stream.step(self.engine)
            except Exception as exc:  # this stream loses its speakers; the others go on
                log.exception("speaker stream failed")
                stream.fail(f"the diarizer failed: {exc}")


@dataclass
class _Loaded:
    diarizer: Diarizer | None = None
    error: str | None = None


_loaded = _Loaded()
_load_lock = threading.Lock()


def unavailable_reason() -> str | None:
    """Why sessions cannot be diarized here (missing or unloadable files), or None."""
    from django.conf import settings

    return _loaded.error or missing_files(settings.DIAR_MODEL_PATH)


def diarizer() -> Diarizer | None:
    """The process's Diarizer, loaded on first use; None (and the reason kept) where it cannot be."""
    if _loaded.diarizer is not None or _loaded.error is not None:
        return _loaded.diarizer
    from django.conf import settings

    with _load_lock:
        if _loaded.diarizer is None and _loaded.error is None:
            if reason := missing_files(settings.DIAR_MODEL_PATH):
                log.info("no speaker diarization: %s", reason)
                return None
            started = time.perf_counter()
            try:
                engine = SortformerEngine.from_settings()
            except ModelFilesError as exc:
                _loaded.error = str(exc)
                log.error("no speaker diarization: %s", exc)
                return None
            _loaded.diarizer = Diarizer(engine, settings.DIAR_LATENCY)
            log.info("loaded speaker diarization on %s in %.1f s", engine.provider, time.perf_counter() - started)
    return _loaded.diarizer


def create_stream() -> SpeakerStream | None:
    loaded = diarizer()
    return loaded.stream() if loaded is not None else None


def describe() -> dict[str, Any]:
    """What /api/models says of diarization."""
    from django.conf import settings

    reason = unavailable_reason()
    return {
        "available": reason is None,
        "unavailable_reason": reason,
        "loaded": _loaded.diarizer is not None,
        "latency_secs": round(SETUPS[settings.DIAR_LATENCY].latency_secs, 2),
        "speakers": SPEAKERS,
    }


def reset_for_tests() -> None:
    """Forget the loaded engine (tests point DIAR_MODEL_PATH at another file)."""
    with _load_lock:
        if _loaded.diarizer is not None:
            _loaded.diarizer.close()
        _loaded.diarizer, _loaded.error = None, None
