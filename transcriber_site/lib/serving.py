"""How `manage.py serve` runs uvicorn: the limits a server on a network needs.

uvicorn's h11 protocol waits for ever on a client that opens a connection and sends
half a request line or half its headers ("slowloris"): each such connection holds a
socket and memory until the client goes. `HeaderTimeoutProtocol` gives every request
HEADER_TIMEOUT_SECS to finish its headers, from the connection's start or from the
first byte after a keep-alive pause; a body then streams at its own pace (uploads are
large), bounded by MAX_UPLOAD_SIZE_MB.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from django.conf import settings
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

KEEP_ALIVE_SECS = 5  # idle keep-alive connections are closed after this
# The largest WebSocket message a browser sends is an SDP answer of a few KB.
WS_MAX_MESSAGE_BYTES = 64 * 1024
WS_PING_SECS = 20.0  # a listener whose socket stops answering pings is dropped after twice this

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request headers do not arrive in time."""

    header_timeout_secs = 10.0  # HEADER_TIMEOUT_SECS, set by uvicorn_options()
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # headers still incomplete
            if self._header_timer is None:
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_secs, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # closed, or upgraded to a WebSocket meanwhile
        if self.conn.their_state is h11.IDLE:
            log.info("closed %s: no complete request within %.0f s", self.client, self.header_timeout_secs)
            self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()


def uvicorn_options() -> dict[str, Any]:
    HeaderTimeoutProtocol.header_timeout_secs = settings.HEADER_TIMEOUT_SECS
    return {
        "http": HeaderTimeoutProtocol,
        "ws": "websockets",  # the implementation that lets the app answer a refused handshake (404)
        "ws_max_size": WS_MAX_MESSAGE_BYTES,
        "ws_ping_interval": WS_PING_SECS,
        "ws_ping_timeout": WS_PING_SECS,
        "timeout_keep_alive": KEEP_ALIVE_SECS,
    }
