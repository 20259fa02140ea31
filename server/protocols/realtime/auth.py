"""API keys on the WebSocket: the HTTP middleware (server/middleware.py ApiKeys) passes WebSocket scopes by,
and browsers cannot set headers on a WebSocket, so the key comes as the `api_key` query parameter or as a
`Sec-WebSocket-Protocol` token `api-key.<key>`, checked here against the same API_KEYS, the same way
(SHA-256 digests compared in constant time; the owner is the key's 16-hex-digit fingerprint)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from starlette.websockets import WebSocket

from config.settings import Settings

PROTOCOL = "realtime"
"""The subprotocol the server selects when offered (a browser that offers a key token must get one back)."""
KEY_PREFIX = "api-key."


@dataclass(frozen=True)
class Access:
    allowed: bool
    owner: str | None = None
    """API key fingerprint when API_KEY_SCOPED_SESSIONS scopes sessions by key, else None."""


def offered_protocols(websocket: WebSocket) -> list[str]:
    """The subprotocols the client offered, in its order."""
    header = websocket.headers.get("sec-websocket-protocol") or ""
    return [p.strip() for p in header.split(",") if p.strip()]


def given_key(websocket: WebSocket) -> str:
    """The key the client sent: a header (non-browser clients), the query parameter or a subprotocol token."""
    auth = websocket.headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for candidate in (websocket.headers.get("x-api-key"), websocket.query_params.get("api_key")):
        if candidate:
            return candidate
    return next((p[len(KEY_PREFIX):] for p in offered_protocols(websocket) if p.startswith(KEY_PREFIX)), "")


def check_access(settings: Settings, websocket: WebSocket) -> Access:
    """Whether the socket may open, and whose sessions it reaches."""
    keys = settings.api_key_list
    if not keys:
        return Access(True)
    given = given_key(websocket)
    digest = hashlib.sha256(given.encode()).digest()
    found = None
    for key in keys:  # no early exit: timing does not tell which key matched
        known = hashlib.sha256(key.encode()).digest()
        if hmac.compare_digest(digest, known) and given:
            found = known
    if found is None:
        return Access(False)
    return Access(True, found.hex()[:16] if settings.api_key_scoped_sessions else None)
