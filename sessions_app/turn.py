"""ICE servers for a peer, with TURN credentials that expire.

With TURN_SECRET set (coturn's `use-auth-secret` with the same `static-auth-secret`), each
caller gets its own username "<expiry unix time>:<name>" and the credential
base64(HMAC-SHA1(secret, username)), the TURN REST API scheme (draft-uberti-behave-turn-rest).
coturn recomputes the HMAC and refuses a username whose time has passed when a relay is
allocated; a relay allocated before stays up. So a credential copied out of a page is of use
to nobody after TURN_CREDENTIAL_TTL_SECS, and the secret never leaves this server.

Without a secret, TURN_USERNAME and TURN_PASSWORD are handed out as they are (a small setup).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

from django.conf import settings


def turn_credentials(now: int, ttl: int, secret: str, name: str) -> tuple[str, str]:
    """(username, credential) good until `now + ttl` (unix seconds) for a TURN server sharing `secret`."""
    username = f"{now + ttl}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(for_whom: str) -> list[dict[str, Any]]:
    """ICE_SERVERS plus TURN_SERVER with credentials for one peer; `for_whom` names it in coturn's log."""
    servers = [dict(server) for server in settings.ICE_SERVERS]
    if not settings.TURN_SERVER:
        return servers
    if settings.TURN_SECRET:
        # A fresh name each time, so that no two peers share a username (no ":" in it: coturn's separator).
        name = f"{for_whom}-{secrets.token_hex(4)}"
        username, credential = turn_credentials(
            int(time.time()), settings.TURN_CREDENTIAL_TTL_SECS, settings.TURN_SECRET, name
        )
    else:
        username, credential = settings.TURN_USERNAME, settings.TURN_PASSWORD
    servers.append({"urls": settings.TURN_SERVER, "username": username, "credential": credential})
    return servers
