"""ICE servers in /api/config, and PUBLIC_IP announced in the offer for servers behind NAT.

TURN credentials: test_turn.py.
"""

from __future__ import annotations

import pytest

from sessions_app.webrtc import announce_public_ip

OFFER = (
    "v=0\r\n"
    "a=candidate:abc 1 udp 2130706431 10.0.0.5 50000 typ host\r\n"
    "a=candidate:def 1 udp 2130706431 192.168.1.7 50001 typ host\r\n"
    "a=candidate:srx 1 udp 1694498815 198.51.100.9 50002 typ srflx raddr 10.0.0.5 rport 50000\r\n"
    "a=end-of-candidates\r\n"
)


def test_public_ip_adds_a_host_candidate_per_local_one():
    sdp = announce_public_ip(OFFER, "203.0.113.10")

    lines = sdp.splitlines()
    assert "a=candidate:abcp 1 udp 2130706430 203.0.113.10 50000 typ host" in lines
    assert "a=candidate:defp 1 udp 2130706430 203.0.113.10 50001 typ host" in lines
    assert "a=candidate:abc 1 udp 2130706431 10.0.0.5 50000 typ host" in lines  # the local ones stay
    assert sum("198.51.100.9" in line for line in lines) == 1  # reflexive candidates are left alone


def test_without_public_ip_the_offer_is_unchanged():
    assert announce_public_ip(OFFER, "") == OFFER


def test_config_serves_the_ice_servers_and_limits(operator_client, settings):
    settings.ICE_SERVERS = [
        {"urls": "stun:stun.example.org:3478"},
        {"urls": "turn:t.example.org", "username": "u", "credential": "p"},
    ]
    settings.TURN_SERVER = ""
    settings.MAX_UPLOAD_SIZE_MB = 512

    config = operator_client.get("/api/config").json()

    assert config["iceServers"] == settings.ICE_SERVERS
    assert config["maxUploadMb"] == 512
    assert "mp3" in config["acceptedExtensions"]
    assert config["presets"] == ["low_latency", "balanced", "accurate"]


@pytest.mark.django_db
def test_health_reports_this_process(operator_client):
    health = operator_client.get("/api/health").json()

    assert set(health) >= {"server", "peers", "audio_sources", "listeners", "tasks", "rss_mb", "live_sessions"}
