"""Limits a visitor cannot talk past: listeners per session, sockets per address; each refusal says which."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
import websockets

from sessions_app.tests.conftest import demo_server
from transcriber_site.testing import LiveServer, api_call

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    limits = {"MAX_LISTENERS_PER_SESSION": "2", "MAX_SOCKETS_PER_ADDRESS": "4"}
    with demo_server(tmp_path_factory.mktemp("limits"), {"talk.flac": None}, **limits) as live:
        yield live


def session(server: LiveServer) -> int:
    [media] = api_call(server, "/api/media")
    return int(api_call(server, "/api/sessions", {"model_id": "whisper", "media_id": media["id"]})["id"])


def ws_url(server: LiveServer, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


async def until(ws, kind: str) -> dict:
    async with asyncio.timeout(10):
        while (message := json.loads(await ws.recv()))["type"] != kind:
            pass
        return message


def test_a_full_session_refuses_the_next_listener_with_a_close_reason(server):
    sid = session(server)

    async def scenario():
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(2):
                ws = await stack.enter_async_context(websockets.connect(ws_url(server, f"/ws/{sid}")))
                await until(ws, "session_info")
            third = await stack.enter_async_context(websockets.connect(ws_url(server, f"/ws/{sid}")))
            error = await until(third, "error")
            await asyncio.wait_for(third.wait_closed(), 5)
            refused = (error["message"], third.close_code, third.close_reason)
        async with websockets.connect(ws_url(server, f"/ws/{sid}")) as later:  # the two have left
            await until(later, "session_info")
        return refused

    message, code, reason = asyncio.run(scenario())

    expected = f"Session {sid} has its most listeners, 2 (MAX_LISTENERS_PER_SESSION); try again later."
    assert message == expected
    assert code == 4429
    assert reason == expected[:120]
    api_call(server, f"/api/sessions/{sid}", method="DELETE")


def test_one_address_cannot_hold_more_sockets_than_the_limit(server):
    async def scenario():
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(4):
                ws = await stack.enter_async_context(websockets.connect(ws_url(server, "/ws")))
                await ws.send(json.dumps({"type": "ping", "t": 1}))
                await until(ws, "pong")
            with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                await websockets.connect(ws_url(server, "/ws"))
        async with websockets.connect(ws_url(server, "/ws")) as after:  # closed sockets are counted out
            await after.send(json.dumps({"type": "ping", "t": 2}))
            await until(after, "pong")
        return refused.value.response

    response = asyncio.run(scenario())

    assert response.status_code == 429
    assert json.loads(response.body) == {
        "error": "This address already has 4 sockets open here (MAX_SOCKETS_PER_ADDRESS); close one first."
    }
