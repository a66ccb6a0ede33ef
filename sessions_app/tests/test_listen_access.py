"""LISTEN_ACCESS: public (the default), link (a session only through its share link), operators.

The REST reads (list, detail, transcript) and the WebSocket join follow the same rule; a
session a visitor may not see is answered like one that does not exist.
"""

from __future__ import annotations

import json

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import Client

from sessions_app.models import State
from sessions_app.routing import websocket_urlpatterns
from sessions_app.tests.conftest import new_session
from transcriber_site.access import SIGN_IN_TO_LISTEN


@pytest.fixture
def session(db, make_media):
    return new_session(make_media(2.0), state=State.RUNNING)


def reads(client: Client, session, key: str | None = None) -> dict[str, int]:
    """The status of each REST read of `session`, with `key` as its share key."""
    query = f"?key={key}" if key is not None else ""
    and_key = f"&key={key}" if key is not None else ""
    return {
        "detail": client.get(f"/api/sessions/{session.pk}{query}").status_code,
        "transcript": client.get(f"/api/sessions/{session.pk}/transcript?format=txt{and_key}").status_code,
    }


def test_public_sessions_are_listed_and_read_by_anyone(client, session):
    assert [s["id"] for s in client.get("/api/sessions").json()] == [session.pk]
    assert reads(client, session) == {"detail": 200, "transcript": 200}


def test_link_sessions_are_not_listed_and_need_their_key(client, operator_client, session, settings):
    settings.LISTEN_ACCESS = "link"

    assert client.get("/api/sessions").json() == []
    assert reads(client, session) == {"detail": 404, "transcript": 404}
    assert reads(client, session, key="wrong") == {"detail": 404, "transcript": 404}
    assert client.get(f"/api/sessions/{session.pk}").json() == {"error": f"There is no session with id {session.pk}."}
    assert reads(client, session, key=session.share_key) == {"detail": 200, "transcript": 200}
    # operators see everything, and are given the link to share
    listed = operator_client.get("/api/sessions").json()
    assert [s["id"] for s in listed] == [session.pk]
    assert listed[0]["share_url"] == f"/?session={session.pk}&key={session.share_key}"
    assert reads(operator_client, session) == {"detail": 200, "transcript": 200}


def test_one_sessions_key_opens_no_other(client, session, make_media, settings):
    settings.LISTEN_ACCESS = "link"
    other = new_session(make_media(1.0, name="other.flac"), state=State.RUNNING)

    assert reads(client, other, key=session.share_key) == {"detail": 404, "transcript": 404}


def test_operators_only_listening_needs_a_sign_in(client, operator_client, session, settings):
    settings.LISTEN_ACCESS = "operators"

    response = client.get("/api/sessions")

    assert response.status_code == 401 and response.json() == {"error": SIGN_IN_TO_LISTEN}
    assert reads(client, session, key=session.share_key) == {"detail": 401, "transcript": 401}
    assert operator_client.get("/api/sessions").status_code == 200
    assert reads(operator_client, session) == {"detail": 200, "transcript": 200}


async def join(path: str, cookie: str | None = None) -> dict:
    """Connect to `path` as the page would (the session cookie, if any) and return the first message."""
    application = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    headers = [(b"cookie", cookie.encode())] if cookie else []
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    try:
        return await communicator.receive_json_from(timeout=5)
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_socket_follows_the_same_rules(make_media, settings):
    from asgiref.sync import sync_to_async

    session = await sync_to_async(new_session)(await sync_to_async(make_media)(2.0), state=State.RUNNING)
    settings.LISTEN_ACCESS = "link"

    refused = await join(f"/ws/{session.pk}")
    wrong = await join(f"/ws/{session.pk}?key=wrong")
    joined = await join(f"/ws/{session.pk}?key={session.share_key}")

    assert refused == wrong == {"type": "error", "message": f"There is no session {session.pk}."}
    assert joined["type"] == "session_info" and joined["session"]["id"] == session.pk
    assert session.share_key not in json.dumps(joined)  # session_info goes to every listener: no key in it

    settings.LISTEN_ACCESS = "operators"
    assert await join(f"/ws/{session.pk}?key={session.share_key}") == {"type": "error", "message": SIGN_IN_TO_LISTEN}
    client = Client()
    operator = await sync_to_async(_operator)()
    await sync_to_async(client.force_login)(operator)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    assert (await join(f"/ws/{session.pk}", cookie=cookie))["type"] == "session_info"


def _operator():
    from transcriber_site.operators import make_operator

    return make_operator("operator")[0]
