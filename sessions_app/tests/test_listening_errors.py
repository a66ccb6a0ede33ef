"""Every bad input on the WebSocket gets an error sentence; the socket and other listeners go on."""

from __future__ import annotations

import asyncio

import pytest

from sessions_app.tests.conftest import demo_server
from transcriber_site.testing import AudioListener, api_call

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("ws-errors"), {"demo.flac": None}) as live:
        [media] = api_call(live, "/api/media")
        live.session = api_call(live, "/api/sessions", {"model_id": "whisper", "media_id": media["id"]})
        live.media_id = media["id"]
        yield live


async def error_after(listener: AudioListener, message: dict | str) -> str:
    await listener.send(message)
    return (await listener.next("error"))["message"]


async def still_usable(listener: AudioListener) -> bool:
    await listener.send({"type": "ping", "t": 42})
    return (await listener.next("pong"))["t"] == 42


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("this is not json", "Messages must be JSON text."),
        ("[1, 2, 3]", 'Messages must be JSON objects with a "type".'),
        ({"kind": "join"}, 'Messages must be JSON objects with a "type".'),
        (
            {"type": "dance"},
            "Unknown message type 'dance'; expected one of join, ready, answer, ice-candidate, ping, publish.",
        ),
        ({"type": "answer", "sdp": "v=0"}, "An answer needs an offer first: send ready."),
        ({"type": "ice-candidate", "candidate": {"candidate": "x"}}, "ICE candidates need a peer first: send ready."),
        ({"type": "join", "session_id": 1}, "This socket has already joined session {sid}."),
    ],
)
def test_bad_messages_get_an_error_and_the_socket_stays_usable(server, message, expected):
    sid = server.session["id"]

    async def scenario():
        async with AudioListener(server.url, sid) as listener:
            await listener.next("session_info")
            error = await error_after(listener, message)
            return error, await still_usable(listener)

    error, usable = asyncio.run(scenario())

    assert error == expected.format(sid=sid)
    assert usable


def test_a_second_ready_and_bad_answers_are_refused(server):
    sid = server.session["id"]

    async def scenario():
        async with AudioListener(server.url, sid) as listener:
            await listener.next("session_info")
            await listener.start_audio()
            errors = [await error_after(listener, {"type": "ready"})]
            # the listener's own answer comes after the offer; a made-up one is refused either way
            errors.append(await error_after(listener, {"type": "answer"}))
            errors.append(await error_after(listener, {"type": "ice-candidate", "candidate": 7}))
            return errors, await still_usable(listener)

    errors, usable = asyncio.run(scenario())

    assert errors[0] == "ready was already received: this socket has its audio; answer the offer."
    assert errors[1] in (
        'answer needs "sdp", the session description of the answer.',
        "The offer was already answered.",
    )
    assert errors[2].startswith('ice-candidate needs "candidate"')
    assert usable


@pytest.mark.parametrize(
    ("join", "expected"),
    [
        ({"type": "join"}, 'join needs "session_id", the number of a session.'),
        ({"type": "join", "session_id": "abc"}, 'join needs "session_id", the number of a session.'),
        ({"type": "join", "session_id": 99999}, "There is no session 99999."),
        ({"type": "ready"}, "Join a session before asking for its audio."),
    ],
)
def test_a_bare_socket_must_join_a_session_that_exists(server, join, expected):
    async def scenario():
        async with AudioListener(server.url, None) as listener:
            error = await error_after(listener, join)
            await listener.send({"type": "join", "session_id": server.session["id"]})  # then a good join works
            info = await listener.next("session_info")
            return error, info

    error, info = asyncio.run(scenario())

    assert error == expected
    assert info["session"]["id"] == server.session["id"]


def test_a_session_that_does_not_exist_or_has_ended(server):
    ended = api_call(server, "/api/sessions", {"model_id": "whisper", "media_id": server.media_id})
    api_call(server, f"/api/sessions/{ended['id']}", method="DELETE")

    async def scenario():
        async with AudioListener(server.url, 424242) as missing, AudioListener(server.url, ended["id"]) as over:
            return (await missing.next("error"))["message"], (await over.next("error"))["message"]

    missing, over = asyncio.run(scenario())

    assert missing == "There is no session 424242."
    assert (
        over
        == f"Session {ended['id']} has ended (stopped); its transcript is at /api/sessions/{ended['id']}/transcript."
    )


def test_one_listeners_bad_input_does_not_disturb_another(server):
    sid = server.session["id"]

    async def scenario():
        async with AudioListener(server.url, sid) as good, AudioListener(server.url, sid) as bad:
            await good.next("session_info")
            await bad.next("session_info")
            for junk in ("{", '{"type": 5}', '{"type": "answer"}', "\x00" * 1000):
                await bad.send(junk)
            statuses = [await good.next("status", within=5) for _ in range(2)]
            return statuses, [m for m in good.messages if m["type"] == "error"]

    statuses, good_errors = asyncio.run(scenario())

    assert statuses[1]["progress_secs"] > statuses[0]["progress_secs"]
    assert good_errors == []
