"""TURN credentials that expire (coturn's use-auth-secret), and the proxy settings from the environment."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from sessions_app.turn import ice_servers, turn_credentials
from sessions_app.webrtc import hub, peer_connection
from transcriber_site.settings import proxy_ssl_header

SECRET = "coturn-static-auth-secret"
TTL = 86400


def expected_credential(username: str) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()).decode()


@pytest.fixture
def turn(settings):
    settings.ICE_SERVERS = [{"urls": "stun:stun.example.org:3478"}]
    settings.TURN_SERVER = "turn:turn.example.org:3478"
    settings.TURN_USERNAME = ""
    settings.TURN_PASSWORD = ""
    settings.TURN_SECRET = SECRET
    settings.TURN_CREDENTIAL_TTL_SECS = TTL
    return settings


def test_credential_is_the_hmac_sha1_of_the_username():
    username, credential = turn_credentials(1_700_000_000, TTL, SECRET, "listener-1")

    assert username == f"{1_700_000_000 + TTL}:listener-1"
    assert credential == expected_credential(username)


def test_turn_credentials_expire_ttl_after_they_are_made():
    made_at = 1_700_000_000

    username, _ = turn_credentials(made_at, 3600, SECRET, "listener")

    expiry, name = username.split(":")
    assert int(expiry) == made_at + 3600  # coturn refuses an allocation with this username after then
    assert name == "listener"


def test_each_config_gets_fresh_turn_credentials_and_never_the_secret(client, turn):
    before = int(time.time())
    first = client.get("/api/config")
    second = client.get("/api/config")
    after = int(time.time())

    stun, relay = first.json()["iceServers"]
    assert stun == {"urls": "stun:stun.example.org:3478"}
    assert relay["urls"] == "turn:turn.example.org:3478"
    assert before + TTL <= int(relay["username"].split(":")[0]) <= after + TTL
    assert relay["credential"] == expected_credential(relay["username"])
    assert second.json()["iceServers"][1]["username"] != relay["username"]
    assert SECRET not in first.content.decode() + second.content.decode()


@pytest.mark.django_db
def test_a_visitor_who_may_not_listen_gets_no_turn_credentials(client, operator_client, turn):
    turn.LISTEN_ACCESS = "operators"

    visitor = client.get("/api/config").json()["iceServers"]
    operator = operator_client.get("/api/config").json()["iceServers"]

    assert visitor == [{"urls": "stun:stun.example.org:3478"}]
    assert [server["urls"] for server in operator] == ["stun:stun.example.org:3478", "turn:turn.example.org:3478"]


def test_without_a_secret_the_static_turn_password_is_given(client, turn):
    turn.TURN_SECRET = ""
    turn.TURN_USERNAME = "alice"
    turn.TURN_PASSWORD = "static-password"

    servers = client.get("/api/config").json()["iceServers"]

    assert servers == [
        {"urls": "stun:stun.example.org:3478"},
        {"urls": "turn:turn.example.org:3478", "username": "alice", "credential": "static-password"},
    ]


def test_without_a_turn_server_only_the_ice_servers_are_given(turn):
    turn.TURN_SERVER = ""

    assert ice_servers("listener") == [{"urls": "stun:stun.example.org:3478"}]


async def test_the_servers_peer_gets_time_limited_turn_credentials(turn):
    before = int(time.time())
    pc = peer_connection()
    try:
        servers = pc._RTCPeerConnection__configuration.iceServers  # aiortc keeps no public getter
    finally:
        await pc.close()
        hub.peers.discard(pc)

    relay = next(s for s in servers if s.urls == "turn:turn.example.org:3478")
    expiry, name = relay.username.split(":")
    assert before + TTL <= int(expiry) <= int(time.time()) + TTL
    assert name.startswith("server-")
    assert relay.credential == expected_credential(relay.username)


def test_proxy_ssl_header_parses_header_and_value():
    assert proxy_ssl_header("HTTP_X_FORWARDED_PROTO,https") == ("HTTP_X_FORWARDED_PROTO", "https")
    assert proxy_ssl_header("X-Forwarded-Proto, https") == ("HTTP_X_FORWARDED_PROTO", "https")
    assert proxy_ssl_header("") is None


@pytest.mark.parametrize("value", ["HTTP_X_FORWARDED_PROTO", "X-Forwarded-Proto,", ",https", "a,b,c"])
def test_a_malformed_proxy_ssl_header_is_refused(value):
    with pytest.raises(ImproperlyConfigured):
        proxy_ssl_header(value)


def test_proxy_and_turn_settings_come_from_the_environment(monkeypatch):
    import transcriber_site.settings as site_settings

    monkeypatch.setenv("CSRF_TRUSTED_ORIGINS", "https://transcribe.example.org,https://other.example.org")
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO,https")
    monkeypatch.setenv("ICE_SERVERS", '[{"urls": "stun:stun.example.org"}]')
    monkeypatch.setenv("TURN_SERVER", "turn:turn.example.org:3478")
    monkeypatch.setenv("TURN_SECRET", SECRET)
    monkeypatch.setenv("TURN_CREDENTIAL_TTL_SECS", "3600")
    try:
        reloaded = importlib.reload(site_settings)
        assert reloaded.CSRF_TRUSTED_ORIGINS == ["https://transcribe.example.org", "https://other.example.org"]
        assert reloaded.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
        assert reloaded.ICE_SERVERS == [{"urls": "stun:stun.example.org"}]  # TURN is added per peer
        assert (reloaded.TURN_SECRET, reloaded.TURN_CREDENTIAL_TTL_SECS) == (SECRET, 3600)
    finally:
        monkeypatch.undo()
        importlib.reload(site_settings)


def test_proxy_settings_default_to_off(monkeypatch):
    import transcriber_site.settings as site_settings

    monkeypatch.delenv("CSRF_TRUSTED_ORIGINS", raising=False)
    monkeypatch.delenv("SECURE_PROXY_SSL_HEADER", raising=False)
    try:
        reloaded = importlib.reload(site_settings)
        assert reloaded.CSRF_TRUSTED_ORIGINS == []
        assert reloaded.SECURE_PROXY_SSL_HEADER is None
    finally:
        monkeypatch.undo()
        importlib.reload(site_settings)
