"""Growing wav files: 16 kHz mono 16-bit PCM, appended to by one writer, read by any process.

No Django here: the audio process (sessions_app.webrtc) imports it before any app is set up.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from media_app.audio import SAMPLE_RATE

SAMPLE_BYTES = 2


class LiveWriter:
    """Appends 16 kHz mono audio to a wav; every append is on disk, header included, when it returns.

    A writer opened on an existing live recording (a publisher that reconnects) goes on at its end.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists() and path.stat().st_size >= HEADER_BYTES:
            reader = GrowingWav(path)
            self.frames, data_at = reader.frames, reader.data_at
            reader.close()
            if data_at != HEADER_BYTES:
                raise ValueError(f"{path.name} is not a live recording")
            self._file = open(path, "r+b")  # noqa: SIM115  (kept open while the session writes)
        else:
            self.frames = 0
            self._file = open(path, "w+b")  # noqa: SIM115
            self._file.write(_header(0))
            self._file.flush()

    def append(self, samples: np.ndarray) -> None:
        """Append float32 samples in [-1, 1] (or int16 samples), at 16 kHz."""
        if not len(samples):
            return
        if samples.dtype != np.int16:
            samples = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
        self._file.seek(HEADER_BYTES + self.frames * SAMPLE_BYTES)
        self._file.write(samples.astype("<i2").tobytes())
        self.frames += len(samples)
        self._file.seek(0)
        self._file.write(_header(self.frames * SAMPLE_BYTES))  # the sizes, after the data they count
        self._file.flush()

    def close(self) -> None:
        self._file.close()


HEADER_BYTES = 44


def truncate(path: Path, frames: int) -> int:
    """Cut a live recording to its first `frames` samples (no longer than it is); the frames it keeps."""
    reader = GrowingWav(path)
    try:
        frames, data_at = min(frames, reader.frames), reader.data_at
    finally:
        reader.close()
    if data_at != HEADER_BYTES:
        raise ValueError(f"{path.name} is not a live recording")
    with open(path, "r+b") as file:
        file.truncate(HEADER_BYTES + frames * SAMPLE_BYTES)
        file.write(_header(frames * SAMPLE_BYTES))
    return frames


def _header(data_bytes: int) -> bytes:
    """The canonical 44-byte header of a 16 kHz mono 16-bit PCM wav with `data_bytes` of samples."""
    byte_rate = SAMPLE_RATE * SAMPLE_BYTES
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, byte_rate, SAMPLE_BYTES, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


class GrowingWav:
    """Reads a 16 kHz mono 16-bit wav at any position, up to wherever it has grown by now."""

    def __init__(self, path: Path | str) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.data_at, self._size_at = self._find_data()

    def _find_data(self) -> tuple[int, int]:
        header = os.pread(self.fd, 12, 0)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise ValueError("not a wav file")
        at = 12
        while True:
            chunk = os.pread(self.fd, 8, at)
            if len(chunk) < 8:
                raise ValueError("a wav file without a data chunk")
            name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"fmt ":
                channels, rate, bits = struct.unpack("<HI6xH", os.pread(self.fd, 16, at + 8)[2:16])
                if (channels, rate, bits) != (1, SAMPLE_RATE, 16):
                    raise ValueError(f"not 16 kHz mono 16-bit audio ({channels} ch, {rate} Hz, {bits} bit)")
            if name == b"data":
                return at + 8, at + 4
            at += 8 + size + (size & 1)

    @property
    def frames(self) -> int:
        """Samples there are now: what the header says, no more than the file holds."""
        declared = struct.unpack("<I", os.pread(self.fd, 4, self._size_at))[0]
        present = os.fstat(self.fd).st_size - self.data_at
        return max(min(declared, present), 0) // SAMPLE_BYTES

    def read(self, start: int, end: int, dtype: type = np.float32) -> np.ndarray:
        """Samples [start, end), fewer where the file ends sooner; float32 in [-1, 1) or int16."""
        end = min(end, self.frames)
        if end <= start:
            return np.zeros(0, dtype)
        raw = os.pread(self.fd, (end - start) * SAMPLE_BYTES, self.data_at + start * SAMPLE_BYTES)
        pcm = np.frombuffer(raw, "<i2")
        return pcm.astype(np.int16) if dtype == np.int16 else (pcm / 32768.0).astype(np.float32)

    def close(self) -> None:
        os.close(self.fd)
