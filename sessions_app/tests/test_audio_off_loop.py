"""A session's audio is read, resampled and encoded at the clock's position in the audio process, off the loop."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from aiortc.mediastreams import MediaStreamError

from sessions_app import webrtc
from sessions_app.webrtc import FRAME_SAMPLES, RESYNC_SECS, SOURCE_FRAME, SOURCE_RATE, AudioHub, SessionEncoder


def ramp(directory: Path, n: int) -> tuple[Path, np.ndarray]:
    """A 16 kHz wav of `n` samples whose values are their index (mod 2**15), and its samples."""
    samples = (np.arange(n) % 32768).astype(np.int16)
    path = directory / f"ramp-{n}.wav"
    soundfile.write(str(path), samples, SOURCE_RATE, subtype="PCM_16")
    return path, samples


def running_clock(n: int, started_at: float) -> dict:
    return {
        "state": "running",
        "started_at": started_at,
        "paused_at": None,
        "paused_secs": 0.0,
        "duration_secs": n / SOURCE_RATE,
        "ended_position_secs": None,
    }


@pytest.fixture
def encoder(tmp_path):
    """An encoder of a ramp of `n` samples whose clock started at t = 1000, and the ramp's samples."""
    opened = []

    def make(n: int) -> tuple[SessionEncoder, np.ndarray]:
        path, samples = ramp(tmp_path, n)
        opened.append(SessionEncoder(running_clock(n, started_at=1000.0), str(path)))
        return opened[-1], samples

    yield make
    for each in opened:
        each.close()


@pytest.fixture
async def hub():
    hub = AudioHub()
    yield hub
    await hub.close_all()


async def all_packets(track) -> list:
    packets = []
    with pytest.raises(MediaStreamError):
        while True:
            packets.append(await track.recv())
    return packets


def test_the_last_samples_are_read_when_the_length_does_not_survive_a_float_round_trip(encoder):
    n = 64002
    assert int(n / SOURCE_RATE * SOURCE_RATE) == n - 1  # the length that truncation cut short
    source, samples = encoder(n)

    pcm = source.read(now=1000.0 + 60)  # the clock stands at the end of the recording

    assert list(pcm) == list(samples[-SOURCE_FRAME:])
    assert source.read_at == n
    assert source.played_out


def test_a_pause_reads_silence_and_the_resume_goes_on_where_the_pause_was(encoder):
    source, samples = encoder(10 * SOURCE_RATE)

    playing = source.read(now=1002.0)
    source.clock.update(state="paused", paused_at=1002.0)
    paused = source.read(now=1003.0)
    source.clock.update(state="running", paused_at=None, paused_secs=1.0)
    resumed = source.read(now=1003.02)

    assert list(playing) == list(samples[2 * SOURCE_RATE - SOURCE_FRAME : 2 * SOURCE_RATE])
    assert not paused.any()
    assert list(resumed) == list(samples[2 * SOURCE_RATE : 2 * SOURCE_RATE + SOURCE_FRAME])


def test_reading_further_than_resync_secs_from_the_clock_jumps_to_it(encoder):
    source, samples = encoder(10 * SOURCE_RATE)
    source.read(now=1001.0)

    near = source.read(now=1001.02 + RESYNC_SECS / 2)  # a late tick: read on, no jump
    far = source.read(now=1005.0)

    assert list(near) == list(samples[SOURCE_RATE : SOURCE_RATE + SOURCE_FRAME])
    assert list(far) == list(samples[5 * SOURCE_RATE - SOURCE_FRAME : 5 * SOURCE_RATE])


async def test_the_packets_are_made_in_another_process_not_on_the_loop(hub, tmp_path, monkeypatch):
    def not_here(*args, **kwargs):
        raise AssertionError("the audio was read or encoded in the web process")

    monkeypatch.setattr(SessionEncoder, "__init__", not_here)
    monkeypatch.setattr(SessionEncoder, "next_packets", not_here)
    path, _ = ramp(tmp_path, 5 * SOURCE_RATE)
    track = hub.listen(1, running_clock(5 * SOURCE_RATE, started_at=time.time()), path)

    packets = [await track.recv() for _ in range(5)]

    assert hub.audio.process is not None and hub.audio.process.pid != os.getpid()
    assert np.all(np.diff([p.pts for p in packets]) == FRAME_SAMPLES)
    assert all(len(bytes(p)) > 0 for p in packets)


async def test_the_track_ends_when_the_recording_has_been_played(hub, tmp_path):
    long, _ = ramp(tmp_path, 60 * SOURCE_RATE)
    await hub.listen(1, running_clock(60 * SOURCE_RATE, started_at=time.time()), long).recv()  # the process is up
    n = 6401  # 0.4 s and one sample
    path, _ = ramp(tmp_path, n)
    track = hub.listen(2, running_clock(n, started_at=time.time()), path)

    packets = await all_packets(track)
    await track.source.task

    assert len(packets) >= n // SOURCE_FRAME - 2  # 20 ms each, from the first tick after the start
    assert np.all(np.diff([p.pts for p in packets]) == FRAME_SAMPLES)


async def test_the_track_ends_when_the_session_ends(hub, tmp_path):
    n = 60 * SOURCE_RATE
    path, _ = ramp(tmp_path, n)
    track = hub.listen(3, running_clock(n, started_at=time.time()), path)
    await track.recv()

    hub.follow(3, {"state": "stopped", "ended_position_secs": 1.0})

    await all_packets(track)
    await track.source.task


async def test_a_recording_that_cannot_be_read_ends_its_track_and_says_why(hub, tmp_path, caplog):
    n = 60 * SOURCE_RATE
    path, _ = ramp(tmp_path, n)
    good = hub.listen(4, running_clock(n, started_at=time.time()), path)
    missing = hub.listen(5, running_clock(n, started_at=time.time()), tmp_path / "gone.wav")

    with caplog.at_level(logging.ERROR, logger="sessions_app.webrtc"):
        await all_packets(missing)
    await good.recv()  # the other session plays on

    assert "session 5: the audio failed: Traceback" in caplog.text
    assert "gone.wav" in caplog.text


async def test_a_dead_audio_process_is_restarted_and_the_packets_go_on(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(webrtc, "RESTART_SECS", 0.0)
    n = 60 * SOURCE_RATE
    path, _ = ramp(tmp_path, n)
    track = hub.listen(6, running_clock(n, started_at=time.time()), path)
    before = await track.recv()
    first = hub.audio.process

    first.kill()
    while hub.audio.process is first:  # the loop sees the end of its pipe
        await track.recv()
    after = [await track.recv() for _ in range(3)]

    assert hub.audio.process is not None and hub.audio.process.is_alive()
    assert after[0].pts > before.pts and (after[0].pts - before.pts) % FRAME_SAMPLES == 0
    assert np.all(np.diff([p.pts for p in after]) == FRAME_SAMPLES)


async def test_an_audio_process_started_before_the_first_listener_serves_it(hub, tmp_path):
    hub.audio.start()
    started = hub.audio.process
    path, _ = ramp(tmp_path, 60 * SOURCE_RATE)

    await hub.listen(8, running_clock(60 * SOURCE_RATE, started_at=time.time()), path).recv()

    assert hub.audio.process is started


async def test_closing_the_hub_stops_the_audio_process(tmp_path):
    hub = AudioHub()
    path, _ = ramp(tmp_path, 60 * SOURCE_RATE)
    track = hub.listen(7, running_clock(60 * SOURCE_RATE, started_at=time.time()), path)
    await track.recv()
    process = hub.audio.process

    await hub.close_all()

    assert process is not None and not process.is_alive()
    assert hub.audio.process is None
    await all_packets(track)  # the listener was told the audio ended
