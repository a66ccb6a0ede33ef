"""`make run` serves this machine only; `make run HOST=0.0.0.0` serves the network, at the address it prints.

The servers run from this working tree (the README test runs the same commands in a fresh
clone), each on a throwaway database and MEDIA_DIR, and are stopped with Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

from transcriber_site.management.commands import serve
from transcriber_site.testing import BASE_DIR, DEMO_PATH, free_port
from transcriber_site.tests.console import LISTENERS, Browser, Console, check_make_run, tail

# What a newcomer's shell does not set; the tests set what they need.
SETTINGS = ("ALLOWED_HOSTS", "PORT", "PUBLIC_IP", "WS_HOST", "DJANGO_SETTINGS_MODULE", "REDIS_URL")


def console_env(root: Path, **settings: str) -> dict[str, str]:
    media = root / "media"
    media.mkdir(exist_ok=True)
    shutil.copy(DEMO_PATH, media / "demo.wav")
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS}
    return env | {
        "DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}",
        "MEDIA_DIR": str(media),
        "SECRET_KEY": "test-only",
        "DIAR_MODEL_PATH": str(root / "no-sortformer"),
        **settings,
    }


@pytest.mark.slow
def test_make_run_listens_on_loopback_only_and_its_link_signs_the_operator_in(tmp_path):
    port = free_port()
    with Console("make run", BASE_DIR, console_env(tmp_path, PORT=str(port)), tmp_path / "run.log") as run:
        operator = check_make_run(run, port)

        status, _, media = operator.get(f"http://127.0.0.1:{port}/api/media")

    assert status == 200 and "demo.wav" in media


@pytest.mark.slow
def test_make_run_with_host_0000_answers_at_the_network_address_it_prints(tmp_path):
    port = free_port()
    address = serve.network_address()
    env = console_env(tmp_path, PORT=str(port))
    with Console("make run HOST=0.0.0.0", BASE_DIR, env, tmp_path / "run.log") as run:
        operator = check_make_run(run, port, host="0.0.0.0")
        if address is None:
            return  # it said so, and serves this machine

        status, headers, _ = operator.get(f"http://{address}:{port}/")
        printed = run.output()

    assert status == 200
    assert f"ws://{address}:*" in headers["Content-Security-Policy"]  # the page's socket may go where it came from
    assert f"ALLOWED_HOSTS is not set, so this run also answers at {address}" in printed
    assert "set PUBLIC_IP to the outside address" in printed


@pytest.mark.slow
def test_an_allowed_hosts_that_was_set_is_kept_and_the_console_says_what_to_add(tmp_path):
    address = serve.network_address()
    if address is None:
        pytest.skip("this machine has no network address but loopback")
    port = free_port()
    env = console_env(tmp_path, ALLOWED_HOSTS="127.0.0.1", PUBLIC_IP="203.0.113.10")
    line = f"{sys.executable} manage.py migrate -v0 && {sys.executable} manage.py serve --host 0.0.0.0 --port {port}"
    with Console(line, BASE_DIR, env, tmp_path / "serve.log") as server:
        assert server.wait_for(LISTENERS).group(1) == f"http://{address}:{port}"
        visitor = Browser()
        local, _, _ = visitor.first_answer(f"http://127.0.0.1:{port}/", server)
        refused, _, _ = visitor.get(f"http://{address}:{port}/")
        printed = server.output()

    assert local == 200
    assert refused == 400, tail(printed)
    assert f"ALLOWED_HOSTS does not name {address}" in printed
    assert f"Set ALLOWED_HOSTS=127.0.0.1,{address}" in printed
    assert "WebRTC audio also offers PUBLIC_IP=203.0.113.10" in printed
    assert "?token=" not in printed  # no --sign-in-link, no link


def test_the_network_address_is_the_route_source_address_else_the_host_names(monkeypatch):
    def no_route(self, address):
        raise OSError("Network is unreachable")

    resolved = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0)) for address in ("127.0.1.1", "192.168.1.7")]
    monkeypatch.setattr(socket.socket, "connect", no_route)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: resolved)

    assert serve.network_address() == "192.168.1.7"

    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: resolved[:1])

    assert serve.network_address() is None


@pytest.mark.parametrize(
    ("host", "address"),
    [("127.0.0.1", None), ("localhost", None), ("::1", None), ("192.168.1.7", "192.168.1.7")],
)
def test_listeners_are_sent_nowhere_else_when_the_server_listens_on_loopback(host, address):
    assert serve.listeners_address(host) == address
