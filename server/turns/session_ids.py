"""Which session a request belongs to: a header, or a stable id derived from the conversation's start."""

from __future__ import annotations

import hashlib
import json
import re

from langchain_core.messages import BaseMessage
from starlette.datastructures import Headers
from starlette.requests import Request

from server.errors import ApiError

SESSION_HEADERS = ("x-session-id", "x-claude-code-session-id")
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def validate_session_id(value: str, param: str = "X-Session-Id") -> str:
    """A session id is 1-128 characters of letters, digits and `._:@-`."""
    if not _VALID.match(value):
        raise ApiError(400, "Invalid session id: use 1-128 characters of letters, digits and ._:@- "
                       "(starting with a letter or digit).", param=param)
    return value


def conversation_key(system: str | None, messages: list[BaseMessage], owner: str | None = None) -> str:
    """A hex digest naming a conversation by how it starts: the system prompt and the first user message
    (and the API key's owner, so two keys starting the same conversation get two)."""
    first_user = next((m.text for m in messages if m.type == "human"), "")
    parts = [system or "", first_user, *([owner] if owner else [])]
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()


def derive_session_id(system: str | None, messages: list[BaseMessage], owner: str | None = None) -> str:
    """Clients that resend whole histories without an id still get continuity."""
    return "auto-" + conversation_key(system, messages, owner)[:24]


def session_from_headers(headers: Headers) -> str | None:
    """The session id a client named, validated; None when it named none."""
    for name in SESSION_HEADERS:
        value = headers.get(name)
        if value is not None:
            return validate_session_id(value.strip(), param=name)
    return None


def project_from_headers(headers: Headers) -> str | None:
    """The project a client named with `X-Project-Id`, validated; None when it named none."""
    value = headers.get("x-project-id")
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not _VALID.match(value):
        raise ApiError(400, "Invalid project id: use 1-128 characters of letters, digits and ._:@- "
                       "(starting with a letter or digit).", param="X-Project-Id")
    return value


def request_owner(request: Request) -> str | None:
    """The owner of what this request creates and may reach: its API key's fingerprint when
    API_KEY_SCOPED_SESSIONS is on and API_KEYS are set; None (no scoping) otherwise."""
    settings = request.app.state.settings
    if not (settings.api_key_scoped_sessions and settings.api_key_list):
        return None
    owner = getattr(request.state, "api_key_owner", None)
    if not owner:  # the key middleware did not run: fail closed rather than reach everyone's sessions
        raise ApiError(401, "Missing or invalid API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
                       code="invalid_api_key")
    return owner
