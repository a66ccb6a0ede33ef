"""Decoding any accepted recording into the library's one stored form: 16 kHz mono 16-bit wav.

PyAV does the decoding and resampling (its wheels carry FFmpeg's libraries, so no
ffmpeg binary is needed). Conversion streams frame by frame: memory stays flat
however long the recording.
"""

from __future__ import annotations

import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np

SAMPLE_RATE = 16000

# Extensions the library accepts; what is inside is probed, not trusted.
AUDIO_EXTENSIONS = {"wav", "wave", "mp3", "flac", "ogg", "oga", "opus", "m4a", "aac", "weba"}
VIDEO_EXTENSIONS = {"mp4", "m4v", "mov", "mkv", "webm", "avi"}
ACCEPTED_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS

# A decode that ends this much short of the container's declared length is a truncated file.
_TRUNCATION_TOLERANCE_SECS = 0.5

av.logging.set_level(av.logging.PANIC)  # errors are raised and reported by us, not printed


class ConversionError(Exception):
    """The file cannot become a library recording; `status` is the HTTP status that fits."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class StoredAudio:
    duration_secs: float
    sample_rate: int
    channels: int
    size_bytes: int


def extension_of(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def check_extension(name: str) -> None:
    ext = extension_of(name)
    if ext not in ACCEPTED_EXTENSIONS:
        shown = f"'.{ext}'" if ext else "a file without an extension"
        accepted = ", ".join(sorted(ACCEPTED_EXTENSIONS))
        raise ConversionError(415, f"Unsupported file type {shown}. Accepted types: {accepted}.")


def convert_to_wav(source: Path, dest: Path, display_name: str) -> StoredAudio:
    """Decode `source` (any accepted format) and write `dest` as 16 kHz mono s16 wav.

    Raises ConversionError with a sentence naming `display_name` on anything that is
    not whole, decodable audio; `dest` is then left absent.
    """
    samples = 0
    try:
        with wave.open(str(dest), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            for pcm in decode_pcm(source, display_name):
                out.writeframesraw(pcm.tobytes())
                samples += len(pcm)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return StoredAudio(
        duration_secs=samples / SAMPLE_RATE,
        sample_rate=SAMPLE_RATE,
        channels=1,
        size_bytes=dest.stat().st_size,
    )


def read_audio(source: Path, display_name: str | None = None) -> np.ndarray:
    """The whole recording as float32 samples in [-1, 1], 16 kHz mono (for short files and tools)."""
    chunks = list(decode_pcm(source, display_name or source.name))
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def decode_pcm(source: Path, display_name: str) -> Iterator[np.ndarray]:
    """16 kHz mono int16 chunks of `source`'s first audio track, decoded as they come.

    The last chunk is followed by the checks that need the whole file (truncation);
    ConversionError with a sentence for the user on anything that is not whole audio.
    """
    if source.stat().st_size == 0:
        raise ConversionError(400, f"'{display_name}' is empty.")
    not_audio = ConversionError(415, f"'{display_name}' is not an audio or video file that can be decoded.")
    try:
        container = av.open(str(source))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        if _is_iso_media(source):  # an mp4/m4a whose index (the moov box, often last) is cut off
            raise ConversionError(422, f"'{display_name}' is damaged or truncated: it cannot be opened.") from None
        raise not_audio from None
    with container:
        if not container.streams.audio:
            raise ConversionError(422, f"'{display_name}' has no audio track.")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream, source)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        decoded = 0
        try:
            for frame in _frames_then_flush(container, stream):
                for out in resampler.resample(frame):
                    pcm = out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                    decoded += len(pcm)
                    yield pcm
        except av.error.FFmpegError:
            if decoded == 0:
                raise not_audio from None
            raise ConversionError(
                422,
                f"'{display_name}' is damaged or truncated: decoding failed after "
                f"{decoded / SAMPLE_RATE:.1f} s of audio.",
            ) from None
    if decoded == 0:
        raise not_audio
    seconds = decoded / SAMPLE_RATE
    if declared is not None and seconds < declared - _TRUNCATION_TOLERANCE_SECS:
        raise ConversionError(
            422,
            f"'{display_name}' is truncated: it declares {declared:.1f} s of audio "
            f"but only {seconds:.1f} s could be decoded.",
        )


def _frames_then_flush(
    container: av.container.InputContainer, stream: av.AudioStream
) -> Iterator[av.AudioFrame | None]:
    """The decoded frames, then None: the resampler's cue to flush what it holds."""
    yield from container.decode(stream)
    yield None


def _declared_seconds(container: av.container.InputContainer, stream: av.AudioStream, source: Path) -> float | None:
    """The length the file claims to have, to tell a truncated file from a short one."""
    riff = _riff_data_seconds(source)
    if riff is not None:
        return riff  # FFmpeg shortens a truncated wav's duration to what is there; the header does not
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _is_iso_media(source: Path) -> bool:
    with source.open("rb") as f:
        return f.read(8)[4:8] == b"ftyp"


def _riff_data_seconds(source: Path) -> float | None:
    """Seconds of audio a RIFF/WAVE header declares in its data chunk, or None."""
    chunk = _riff_data_chunk(source)
    if chunk is None:
        return None
    _, size, byte_rate = chunk
    return size / byte_rate


def _riff_data_chunk(source: Path) -> tuple[int, int, int] | None:
    """(offset, size, byte rate) of a RIFF/WAVE file's data chunk, or None if unknown."""
    with source.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        byte_rate = 0
        while len(chunk := f.read(8)) == 8:
            kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if kind == b"fmt ":
                fmt = f.read(size)
                if len(fmt) >= 12:
                    byte_rate = struct.unpack("<I", fmt[8:12])[0]
                f.seek(size % 2, 1)
            elif kind == b"data":
                # 0 and 0xFFFFFFFF mean "length unknown" (streamed writers)
                if byte_rate == 0 or size in (0, 0xFFFFFFFF):
                    return None
                return f.tell(), size, byte_rate
            else:
                f.seek(size + size % 2, 1)
    return None


def is_library_wav(path: Path) -> bool:
    """True when `path` is already in the stored form (16 kHz, mono, 16-bit PCM wav) and whole."""
    try:
        with wave.open(str(path), "rb") as w:
            form = (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getcomptype())
        chunk = _riff_data_chunk(path)
    except (wave.Error, EOFError, OSError):
        return False
    if form != (SAMPLE_RATE, 1, 2, "NONE") or chunk is None:
        return False
    offset, size, _ = chunk
    return size > 0 and offset + size <= path.stat().st_size


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()
