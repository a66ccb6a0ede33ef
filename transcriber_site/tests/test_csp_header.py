"""Every answer carries the Content-Security-Policy: the page's own scripts, styles and sockets only."""

from __future__ import annotations

import pytest

from transcriber_site import settings as site_settings

pytestmark = pytest.mark.django_db


def directives(header: str) -> dict[str, list[str]]:
    parts = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in parts}


def test_the_page_carries_a_strict_policy(client):
    policy = directives(client.get("/")["Content-Security-Policy"])

    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["media-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["connect-src"][0] == "'self'"
    for host in ("127.0.0.1", "localhost"):  # the default ALLOWED_HOSTS, on any port
        assert {f"ws://{host}:*", f"wss://{host}:*"} <= set(policy["connect-src"])
    assert not [s for s in policy["connect-src"] if "[" in s]  # no IPv6 literal: not valid in CSP


def test_json_answers_carry_the_same_policy(client):
    # One header for every answer: a JSON body opened as a document still runs nothing and
    # cannot be framed, and the middleware need not know which answers are pages.
    page = directives(client.get("/")["Content-Security-Policy"])
    config = client.get("/api/config")

    assert config["Content-Type"].startswith("application/json")
    assert directives(config["Content-Security-Policy"]) == page


@pytest.mark.parametrize(
    ("ws_host", "allowed_hosts", "sources"),
    [
        ("", ["example.org", "[::1]"], ["ws://example.org:*", "wss://example.org:*"]),
        (
            "",
            [".example.org"],
            ["ws://example.org:*", "wss://example.org:*", "ws://*.example.org:*", "wss://*.example.org:*"],
        ),
        ("", ["*"], ["ws:", "wss:"]),
        ("rt.example.org:8443", ["example.org"], ["ws://rt.example.org:8443", "wss://rt.example.org:8443"]),
        ("wss://rt.example.org/live/", ["example.org"], ["wss://rt.example.org"]),
    ],
)
def test_the_websocket_sources_follow_ws_host_else_the_allowed_hosts(monkeypatch, ws_host, allowed_hosts, sources):
    monkeypatch.setattr(site_settings, "WS_HOST", ws_host)
    monkeypatch.setattr(site_settings, "ALLOWED_HOSTS", allowed_hosts)

    assert sorted(site_settings._websocket_sources()) == sorted(sources)
