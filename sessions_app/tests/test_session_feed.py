"""The Browse tab's feed, /ws/sessions: session changes are pushed, as LISTEN_ACCESS allows.

A session created or changing state arrives as its card, a listener count as one number
(coalesced: many joins, few pushes); visitors get the listeners' card, operators the
operator's; under `link` a visitor hears nothing, under `operators` one is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import Client

from sessions_app.models import OPERATOR_FIELDS, State, TranscriptionSession
from sessions_app.routing import websocket_urlpatterns
from sessions_app.tests.conftest import new_session

pytestmark = pytest.mark.django_db(transaction=True)  # pushes go out once a change is committed


def communicator(path: str, cookie: str | None = None) -> WebsocketCommunicator:
    headers = [(b"cookie", cookie.encode())] if cookie else []
    return WebsocketCommunicator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), path, headers=headers)


@contextlib.asynccontextmanager
async def browse_page(cookie: str | None = None) -> AsyncIterator[WebsocketCommunicator]:
    """An open Browse tab's feed, subscribed."""
    feed = communicator("/ws/sessions", cookie)
    connected, _ = await feed.connect()
    assert connected
    try:
        yield feed
    finally:
        await feed.disconnect()


async def operator_cookie() -> str:
    return await sync_to_async(signed_in_operator)()


def signed_in_operator():
    """The session cookie of an operator's browser."""
    from transcriber_site.operators import make_operator

    client = Client()
    client.force_login(make_operator("operator")[0])
    return f"sessionid={client.cookies['sessionid'].value}"


async def next_card(feed: WebsocketCommunicator, session_id: int) -> dict[str, Any]:
    """The next card of `session_id` the feed pushes (a new session, or a change of state)."""
    while True:
        message = await feed.receive_json_from(timeout=5)
        if message["type"] == "session" and message["session"]["id"] == session_id:
            return message["session"]


@pytest.fixture
async def media(make_media):
    return await sync_to_async(make_media)(2.0)


async def test_a_new_session_and_each_change_of_its_state_are_pushed_once(media):
    async with browse_page() as feed:
        assert await feed.receive_json_from(timeout=5) == {"type": "subscribed", "listed": True}

        session = await sync_to_async(new_session)(media)
        card = await next_card(feed, session.pk)
        assert card["state"] == "starting" and card["media_filename"] == media.filename
        assert card["client_count"] == 0 and card["model_name"] == "Whisper"

        states = []
        for change in ("start_clock", "pause", "resume"):
            await sync_to_async(getattr(session, change))()
            states.append((await next_card(feed, session.pk))["state"])
        await sync_to_async(session.stop)("Stopped by the test.")
        stopped = await next_card(feed, session.pk)

        assert states == ["running", "paused", "running"]
        assert stopped["state"] == "stopped" and stopped["stop_reason"] == "Stopped by the test."
        assert await feed.receive_nothing(timeout=0.5)  # one push per change


async def test_joins_and_leaves_push_the_count_a_few_times_not_once_each(media):
    session = await sync_to_async(new_session)(media, state=State.RUNNING)
    async with browse_page() as feed:
        await feed.receive_json_from(timeout=5)  # subscribed
        listeners = [communicator(f"/ws/{session.pk}") for _ in range(4)]
        for listener in listeners:
            assert (await listener.connect())[0]
            assert (await listener.receive_json_from(timeout=5))["type"] == "session_info"

        counts = []
        while not counts or counts[-1] != 4:
            message = await feed.receive_json_from(timeout=5)
            assert message == {"type": "count", "id": session.pk, "client_count": message["client_count"]}
            counts.append(message["client_count"])
        assert len(counts) < 4  # coalesced: not one push per join
        assert await feed.receive_nothing(timeout=0.8)

        for listener in listeners[:3]:
            await listener.disconnect()
        while counts[-1] != 1:
            counts.append((await feed.receive_json_from(timeout=5))["client_count"])
        await listeners[3].disconnect()
        assert (await feed.receive_json_from(timeout=5))["client_count"] == 0


async def test_visitors_get_the_listeners_card_and_operators_the_operators(media):
    async with browse_page() as visitor, browse_page(await operator_cookie()) as operator:
        assert (await visitor.receive_json_from(timeout=5))["listed"] is True
        assert (await operator.receive_json_from(timeout=5))["listed"] is True

        session = await sync_to_async(new_session)(media, source_url="https://user:secret@radio.example/live.mp3")
        for_visitor = await next_card(visitor, session.pk)
        for_operator = await next_card(operator, session.pk)

    assert not set(OPERATOR_FIELDS) & set(for_visitor)
    assert "secret" not in str(for_visitor) and session.share_key not in str(for_visitor)
    assert for_operator["share_url"] == f"/?session={session.pk}&key={session.share_key}"
    assert for_operator["source_url"] == "https://user:secret@radio.example/live.mp3"
    assert {k: v for k, v in for_operator.items() if k not in OPERATOR_FIELDS} == for_visitor


async def test_under_link_a_visitor_hears_nothing_and_an_operator_everything(media, settings):
    settings.LISTEN_ACCESS = "link"
    async with browse_page() as visitor, browse_page(await operator_cookie()) as operator:
        assert await visitor.receive_json_from(timeout=5) == {"type": "subscribed", "listed": False}
        await operator.receive_json_from(timeout=5)

        session = await sync_to_async(new_session)(media, state=State.RUNNING)
        await sync_to_async(session.pause)()
        assert (await next_card(operator, session.pk))["state"] == "running"  # created
        paused = await next_card(operator, session.pk)
        assert paused["state"] == "paused" and paused["share_url"].endswith(session.share_key)

        listener = communicator(f"/ws/{session.pk}?key={session.share_key}")  # its share link
        assert (await listener.connect())[0]
        assert (await operator.receive_json_from(timeout=5))["type"] == "count"
        await listener.disconnect()
        assert await visitor.receive_nothing(timeout=0.5)


async def test_under_operators_a_visitor_is_refused_and_an_operator_hears(media, settings):
    settings.LISTEN_ACCESS = "operators"

    refused = communicator("/ws/sessions")
    connected, code = await refused.connect()

    assert (connected, code) == (False, 4401)  # a close before the handshake: the list's 401
    async with browse_page(await operator_cookie()) as operator:
        assert (await operator.receive_json_from(timeout=5))["listed"] is True
        session = await sync_to_async(new_session)(media)
        assert (await next_card(operator, session.pk))["share_url"]


async def test_the_feed_answers_ping_and_refuses_anything_else():
    async with browse_page() as feed:
        await feed.receive_json_from(timeout=5)
        await feed.send_json_to({"type": "ping", "t": 7})
        pong = await feed.receive_json_from(timeout=5)
        await feed.send_json_to({"type": "join", "session_id": 1})
        refused = await feed.receive_json_from(timeout=5)
        await feed.send_to(text_data="[" * 5000)
        garbage = await feed.receive_json_from(timeout=5)

    assert pong["type"] == "pong" and pong["t"] == 7
    assert (
        refused
        == garbage
        == {
            "type": "error",
            "message": 'This socket only sends session changes; the only message it takes is {"type": "ping"}.',
        }
    )


async def test_a_push_that_cannot_be_sent_never_fails_the_change(media, monkeypatch, caplog):
    from channels.layers import get_channel_layer

    session = await sync_to_async(new_session)(media, state=State.RUNNING)
    await sync_to_async(TranscriptionSession.push_listed)(session.pk + 1000)  # no such session: nothing to say

    async def down(*args: object) -> None:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(get_channel_layer(), "group_send", down)
    await sync_to_async(session.pause)()

    assert (await sync_to_async(TranscriptionSession.objects.get)(pk=session.pk)).state == State.PAUSED
    assert "could not tell the Browse pages" in caplog.text
