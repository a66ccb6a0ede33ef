"""`manage.py serve`: the site on uvicorn, and the addresses to open it at.

On loopback (the default) it serves this machine only. With `--host 0.0.0.0` (`make run
HOST=0.0.0.0`) it also prints the address other machines open, this machine's network
address, and what that address needs: ALLOWED_HOSTS must name it (where ALLOWED_HOSTS is not
set, this run adds it), and listeners beyond a NAT need PUBLIC_IP for their WebRTC audio.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.http.request import validate_host
from django.urls import reverse

from transcriber_site.lib.serving import uvicorn_options
from transcriber_site.operators import first_run_sign_in_link

ALL_INTERFACES = ("0.0.0.0", "::", "")
# A UDP "connect" sends nothing: the kernel only picks the route, and with it our source address.
PRIVATE_PROBE = ("10.255.255.255", 1)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def network_address() -> str | None:
    """This machine's IPv4 address on its network, found without the network; None if it has none.

    The source address of a UDP socket "connected" to a private address, else the first
    address the host name resolves to that is neither loopback nor unspecified.
    """
    candidates: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
        probe.connect(PRIVATE_PROBE)
        candidates.append(probe.getsockname()[0])
    with contextlib.suppress(OSError):
        candidates += [str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    for candidate in candidates:
        address = ipaddress.ip_address(candidate)
        if not (address.is_loopback or address.is_unspecified):
            return candidate
    return None


def listeners_address(host: str) -> str | None:
    """The address other machines open: None when serving loopback only, or when no address is found."""
    if is_loopback(host):
        return None
    return network_address() if host in ALL_INTERFACES else host.strip("[]")


def base_url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


class Command(BaseCommand):
    help = "Serve the site (HTTP and WebSocket) with uvicorn, the production server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for all)")
        parser.add_argument("--port", type=int, default=settings.PORT, help="port (default: PORT, 8000)")
        parser.add_argument(
            "--sign-in-link",
            action="store_true",
            help="print a one-time sign-in link for the local operator (created if there is no operator yet)",
        )

    def handle(self, *args: Any, host: str, port: int, sign_in_link: bool, **options: Any) -> None:
        address = listeners_address(host)
        notes = self.allow(address) if address else []
        if sign_in_link or not is_loopback(host):
            self.print_addresses(host, port, sign_in_link, notes)
        # uvicorn, not daphne: daphne queues a whole request body in memory before the
        # application reads it (and Twisted parses multipart bodies into memory as well),
        # so a 1 GB upload would cost gigabytes of RAM; uvicorn streams it with backpressure.
        uvicorn.run(
            "transcriber_site.asgi:application",
            host=host,
            port=port,
            loop="asyncio",
            lifespan="on",
            log_level="info",
            server_header=False,
            **uvicorn_options(),  # header timeout, WebSocket message size, pings
        )

    def allow(self, address: str) -> list[str]:
        """Make a page opened at `address` answered, or say what to set; before the app exists.

        An ALLOWED_HOSTS someone set (environment or `.env`) is theirs: it is never widened.
        Left unset, its default names loopback only; this machine's own address is no wider
        than where the operator asked it to listen, so this run adds it.
        """
        name = f"[{address}]" if ":" in address else address  # how Django writes an IPv6 host
        if validate_host(name, settings.ALLOWED_HOSTS):
            return []
        if "ALLOWED_HOSTS" in os.environ:
            wanted = ",".join([*settings.ALLOWED_HOSTS, name])
            return [
                f"ALLOWED_HOSTS does not name {name}: a page opened there gets 400 Bad Request.",
                f"Set ALLOWED_HOSTS={wanted} (or the names listeners use) and start again.",
            ]
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, name]
        if not settings.WS_HOST and ":" not in address:  # the page's WebSocket goes to its own host
            settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["connect-src"] += [f"ws://{name}:*", f"wss://{name}:*"]
        return [
            f"ALLOWED_HOSTS is not set, so this run also answers at {name}; to serve under a name,",
            f"set ALLOWED_HOSTS to the names listeners use (e.g. ALLOWED_HOSTS={name},transcribe.example.org).",
        ]

    def print_sign_in_link(self, host: str, port: int) -> None:
        self.print_addresses(host, port, sign_in_link=True)

    def print_addresses(self, host: str, port: int, sign_in_link: bool, notes: list[str] | None = None) -> None:
        """The operator's one-time link (on this machine, and from others), where listeners go, what to set."""
        local = base_url("127.0.0.1" if host in ALL_INTERFACES else host, port)
        beyond = not is_loopback(host)
        address = listeners_address(host) if beyond else None
        lines: list[str] = []
        if sign_in_link:
            link = first_run_sign_in_link()
            if link is None:
                lines.append(f"Open {local}/ and sign in as an operator at {local}{reverse('sign-in')}")
            else:
                name, key = link
                minutes = round(settings.SIGN_IN_LINK_TTL_SECS / 60)
                lines += [
                    f"To operate as '{name}', open this link (it signs one browser in, within {minutes} minutes):",
                    f"    {local}/?token={key}",
                ]
                if address and base_url(address, port) != local:
                    lines += ["  or, from another machine:", f"    {base_url(address, port)}/?token={key}"]
        if not beyond:
            lines.append(f"Listeners open {local}/")
        elif address is None:
            lines += [
                f"Listeners on this machine open {local}/; this machine has no network address",
                "but loopback, so no other machine can reach it.",
            ]
        else:
            lines.append(f"Listeners open {base_url(address, port)}/")
            lines += notes or []
            if settings.PUBLIC_IP:
                lines.append(f"WebRTC audio also offers PUBLIC_IP={settings.PUBLIC_IP}, for listeners beyond a NAT.")
            else:
                lines += [
                    "Listeners on other networks, beyond a NAT: set PUBLIC_IP to the outside address that",
                    f"forwards to {address} (1:1 NAT), or a TURN server, for their WebRTC audio.",
                ]
        self.stdout.write("\n" + "".join(f"    {line}\n" for line in lines) + "\n")
        self.stdout.flush()  # before uvicorn's first line, also when the console is a pipe
