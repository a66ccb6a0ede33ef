"""Live sources: how late the subtitles and the audio reach a listener, and what a live session costs.

    .venv/bin/python bench/live.py [--clip two_cities]

The bench starts the real server (`manage.py serve`, embedded worker, the bundled Whisper)
and a local Icecast-like server that sends a recorded speech clip as an mp3 in real time
(no burst on connect, so that second p of the stream arrives p seconds after the start).
One aiortc listener joins the stream session over the real WebSocket, and the bench prints:

* source-to-screen latency: from the moment the end of a final's last word reached the
  server to the moment that final reached the listener (p50, p95, max), in seconds;
* the relay's delay: from the moment a stretch of audio reached the server to the moment
  the listener received it (found by cross-correlating what the listener heard with the
  session's recording), p50 and p95;
* the server's CPU (the web process and its audio process) for the live session, then for a
  recording session that plays the live session's own recording: the same speech, in
  seconds of CPU per second of audio, and their ratio.

The microphone source writes into the same recording by the same code (`LiveIngest`), so
its figures differ from these by the browser's capture and the WebRTC hop to the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transcriber_site.settings")

import django

django.setup()

from media_app.audio import read_audio
from sessions_app.models import LIVE_LEAD_SECS
from transcriber_site import speech_set
from transcriber_site.testing import (
    AudioListener,
    GatedMicrophone,
    LiveServer,
    Radio,
    api_call,
    live_operator,
    mp3_of,
)


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time of the process and its children (the web process and its audio process)."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def wait_ended(server: LiveServer, sid: int, within: float = 120.0) -> dict:
    deadline = time.monotonic() + within
    while (session := api_call(server, f"/api/sessions/{sid}"))["state"] not in ("completed", "stopped", "error"):
        if time.monotonic() > deadline:
            raise TimeoutError(session)
        time.sleep(0.5)
    return session


async def listen(server: LiveServer, sid: int, seconds: float) -> tuple[AudioListener, list[tuple[float, dict]]]:
    """Listen for `seconds`; the finals with the time each arrived."""
    finals: list[tuple[float, dict]] = []
    async with AudioListener(server.url, sid) as listener:
        await listener.start_audio()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                message = await listener.next("subtitle", within=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if message["is_final"] and not message.get("replay"):
                finals.append((time.time(), message))
        return listener, finals


def relay_delays(listener: AudioListener, recording: np.ndarray, started_at: float) -> list[float]:
    """For each second the listener heard: when it arrived, less when that audio reached the server."""
    delays = []
    frames = listener.audio
    for first in range(0, len(frames) - 50, 50):  # 50 frames of 20 ms: one second
        chunk = frames[first : first + 50]
        heard = np.concatenate([samples for _, _, samples in chunk])
        heard = heard[: len(heard) // 3 * 3].reshape(-1, 3).mean(axis=1)  # 48 -> 16 kHz
        if np.sqrt(np.mean(heard**2)) < 0.003:
            continue  # silence matches anywhere
        scores = np.correlate(recording, heard, mode="valid")
        energy = np.sqrt(np.convolve(recording**2, np.ones(len(heard)), mode="valid") * np.sum(heard**2))
        normalised = scores / np.maximum(energy, 1e-9)
        best = int(np.argmax(normalised))
        if normalised[best] < 0.6:
            continue
        end_position = (best + len(heard)) / 16000
        reached_server = started_at + end_position - LIVE_LEAD_SECS  # the clock trails what arrives by the lead
        delays.append(chunk[-1][0] - reached_server)
    return delays


def best_at(recording: np.ndarray, piece: np.ndarray) -> int:
    """The sample of `recording` where `piece` matches best."""
    scores = np.correlate(recording, piece, mode="valid")
    energy = np.sqrt(np.convolve(recording**2, np.ones(len(piece)), mode="valid") * np.sum(piece**2))
    return int(np.argmax(scores / np.maximum(energy, 1e-9)))


def microphone(server: LiveServer, speech: np.ndarray, media_dir: Path) -> tuple[list[float], dict]:
    """An aiortc operator says `speech` into a microphone session in real time; a listener reads it.

    The latency of each final: from the moment the microphone said the end of its last word to
    the moment the final reached the listener.
    """
    session = api_call(server, "/api/sessions", {"source": "microphone", "model_id": "whisper"})
    sid = session["id"]

    async def go_live() -> tuple[GatedMicrophone, AudioListener]:
        async with live_operator(server, sid) as operator, AudioListener(server.url, sid) as listener:
            await listener.start_audio()
            track = GatedMicrophone(speech)
            answer = await operator.publish(track)  # while the model loads
            if answer["type"] != "publish-answer":
                raise RuntimeError(answer)
            info = next(m for m in operator.messages if m["type"] == "session_info")["session"]
            if info["clock"]["state"] != "running":  # the model is loading: its clock starts once it is
                while (await operator.next("clock", within=60))["state"] != "running":
                    pass
            track.go.set()
            await asyncio.wait_for(track.said.wait(), len(speech) / 16000 + 10)
            await asyncio.sleep(3.0)  # the last finals
            return track, listener

    track, listener = asyncio.run(go_live())
    api_call(server, f"/api/sessions/{sid}/end", {})
    ended = wait_ended(server, sid)
    stored = api_call(server, f"/api/sessions/{sid}")["media_filename"]
    recording = read_audio(next(media_dir.glob(Path(stored).stem.replace(" ", "-")[:20] + "*.wav")))
    begins = best_at(recording[: 8 * 16000], np.asarray(speech[: 2 * 16000])) / 16000  # where the speech starts
    assert track.spoke_at is not None
    latencies = [
        m["received_at"] - (track.spoke_at + m["end"] - begins)
        for m in listener.finals()
        if not m.get("replay") and m["end"] > begins
    ]
    return latencies, ended


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default="two_cities", help="a recording of transcriber_site.speech_set")
    args = parser.parse_args()
    clip = speech_set.clip(args.clip)
    env = {"STREAM_ALLOW_PRIVATE": "true"}
    with (
        tempfile.TemporaryDirectory() as tmp,
        Radio(mp3_of(np.asarray(clip.audio)), burst_secs=0.0) as radio,
        LiveServer(Path(tmp), env=env) as server,
    ):
        assert server.process is not None
        process = psutil.Process(server.process.pid)
        api_call(server, "/api/models")  # the start-up scan is done before the clock starts
        cpu_before = cpu_seconds(process)
        stream = {"model_id": "whisper", "source": "stream", "url": radio.url("/live.mp3")}
        session = api_call(server, "/api/sessions", stream)
        sid = session["id"]
        listener, finals = asyncio.run(listen(server, sid, clip.seconds))
        api_call(server, f"/api/sessions/{sid}/end", {})
        live = wait_ended(server, sid)
        live_cpu = cpu_seconds(process) - cpu_before
        started_at = live["clock"]["started_at"]
        recording = read_audio(next(Path(tmp, "media").glob("Stream-*.wav")))

        latencies = [
            arrived - (started_at + final["end"] - LIVE_LEAD_SECS) for arrived, final in finals if final["end"] > 0
        ]
        delays = relay_delays(listener, recording, started_at)

        deadline = time.monotonic() + 120  # its final pass runs after it: not to be counted for the replay
        while "final" not in api_call(server, f"/api/sessions/{sid}")["transcripts"] and time.monotonic() < deadline:
            time.sleep(0.5)
        cpu_before = cpu_seconds(process)
        replay = api_call(server, "/api/sessions", {"model_id": "whisper", "media_id": live["media_id"]})
        replayed = wait_ended(server, replay["id"], within=live["duration_secs"] + 120)
        replay_cpu = cpu_seconds(process) - cpu_before

        mic_latencies, mic = microphone(server, np.asarray(clip.audio), Path(tmp, "media"))

    seconds = live["duration_secs"]
    print(
        f"live source: {args.clip} ({clip.seconds:.1f} s of recorded speech), a real-time mp3 stream, Whisper tiny.en"
    )
    print(f"  session: {live['state']}, {seconds:.1f} s received, {len(finals)} finals on the listener")
    if latencies:
        print(
            f"  source-to-screen latency (end of a final's last word at the server -> the final at the listener): "
            f"p50 {statistics.median(latencies):.2f} s, p95 {percentile(latencies, 0.95):.2f} s, "
            f"max {max(latencies):.2f} s"
        )
    if delays:
        print(
            f"  relay delay (audio at the server -> the same audio at the listener, {len(delays)} seconds matched): "
            f"p50 {statistics.median(delays) * 1000:.0f} ms, p95 {percentile(delays, 0.95) * 1000:.0f} ms "
            f"(of which {LIVE_LEAD_SECS * 1000:.0f} ms is the clock's lead)"
        )
    print(
        f"  server CPU: live {live_cpu / seconds:.3f} s per s of audio; recording of the same speech "
        f"({replayed['state']}) {replay_cpu / seconds:.3f} s per s; ratio {live_cpu / max(replay_cpu, 1e-9):.2f}"
    )

    if mic_latencies:
        print(
            f"microphone (an aiortc operator saying the same clip in real time), {mic['state']}: "
            f"microphone-to-screen latency (the end of a final's last word said -> the final at the listener): "
            f"p50 {statistics.median(mic_latencies):.2f} s, p95 {percentile(mic_latencies, 0.95):.2f} s, "
            f"max {max(mic_latencies):.2f} s ({len(mic_latencies)} finals)"
        )


if __name__ == "__main__":
    main()
