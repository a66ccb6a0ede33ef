"""Hostile input on the WebSocket and on the connection: answered, bounded, and nothing left behind."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
import websockets

from sessions_app.tests.conftest import demo_server
from transcriber_site.testing import AudioListener, LiveServer, api_call

pytestmark = pytest.mark.slow

DEEP = "[" * 1000 + "]" * 1000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("hostile"), {"long.flac": 12.0}, HEADER_TIMEOUT_SECS="1") as live:
        yield live


def new_session(server: LiveServer) -> int:
    [media] = api_call(server, "/api/media")
    return int(api_call(server, "/api/sessions", {"model_id": "whisper", "media_id": media["id"]})["id"])


def health(server: LiveServer) -> dict:
    return api_call(server, "/api/health")


def settled(server: LiveServer, **expected: int) -> dict:
    """/api/health once its counts are back to `expected` (peers close asynchronously), or as it is after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        now = health(server)
        if all(now[k] == v for k, v in expected.items()) or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def test_a_deeply_nested_frame_is_refused_and_its_socket_still_cleans_up(server):
    sid = new_session(server)
    before = settled(server, peers=0, listeners=0)

    async def scenario():
        errors = []
        for _ in range(10):
            async with AudioListener(server.url, sid) as listener:
                await listener.next("session_info")
                await listener.start_audio()  # a peer on the server
                await listener.send(DEEP)
                errors.append((await listener.next("error"))["message"])
                await listener.send({"type": "ping", "t": 1})
                assert (await listener.next("pong"))["t"] == 1
        return errors

    errors = asyncio.run(scenario())

    assert errors == ["JSON nested deeper than 32 levels is not accepted."] * 10
    after = settled(server, peers=before["peers"], listeners=before["listeners"])
    assert after["peers"] == before["peers"] == 0
    assert after["listeners"] == before["listeners"] == 0
    api_call(server, f"/api/sessions/{sid}", method="DELETE")


def test_an_oversized_frame_closes_the_socket_and_leaks_nothing(server):
    sid = new_session(server)

    async def scenario():
        async with AudioListener(server.url, sid) as listener:
            await listener.next("session_info")
            await listener.start_audio()
            await listener.send(json.dumps({"type": "answer", "sdp": "x" * 200_000}))
            await asyncio.wait_for(listener.ws.wait_closed(), 5)
            return listener.ws.close_code

    assert asyncio.run(scenario()) == 1009  # "message too big"
    after = settled(server, peers=0, listeners=0, audio_sources=0)
    assert (after["peers"], after["listeners"]) == (0, 0)
    api_call(server, f"/api/sessions/{sid}", method="DELETE")


@pytest.mark.parametrize("path", ["/ws/abc", "/wsx", "/ws/1/2", "/socket"])
def test_an_unknown_websocket_path_is_a_404_with_a_sentence(server, path):
    async def scenario():
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(server.url.replace("http://", "ws://") + path)
        return refused.value.response

    response = asyncio.run(scenario())

    assert response.status_code == 404
    assert json.loads(response.body)["error"].startswith(f"There is no WebSocket at {path};")
    assert "Internal Server Error" not in server.log()


def test_a_connection_that_never_finishes_its_headers_is_closed(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as stalled:
        stalled.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        started = time.monotonic()
        answer = stalled.recv(1024)
        closed_after = time.monotonic() - started
        assert stalled.recv(1024) == b""  # then closed

    assert answer.startswith(b"HTTP/1.1 408")
    assert closed_after < 5  # HEADER_TIMEOUT_SECS is 1 here; never held for ever
    assert health(server)["server"]  # and the server serves on


def test_a_keep_alive_connection_is_given_the_same_limit_for_its_next_request(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = conn.recv(65536)
        conn.sendall(b"GET /api/health HTTP/1.1\r\n")  # the second request stalls
        rest = b""
        while chunk := conn.recv(65536):
            rest += chunk

    assert first.startswith(b"HTTP/1.1 200")
    assert b"408 Request Timeout" in rest
