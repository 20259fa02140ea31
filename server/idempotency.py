"""`Idempotency-Key` on the non-streaming chat routes: a retry gets the first response, not a second turn.

A stored response is found by route, the API key's fingerprint (never its place in API_KEYS, which a reordered
list hands to another key) and the client's key; it is replayed only to the same request (body, session and
project). The same key on a different request is a 422, as Stripe answers, not someone else's answer."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from server.errors import ApiError
from server.runtime import Runtime
from server.turns.session_ids import SESSION_HEADERS

REPLAYED = "Idempotent-Replayed"
# Headers that change what a turn does: a request is the same one only if these are the same too.
_REQUEST_HEADERS = (*SESSION_HEADERS, "x-project-id")


async def request_fingerprint(request: Request) -> str:
    """SHA-256 of the body (as canonical JSON when it parses, so key order and spacing do not matter) and
    the session and project headers."""
    raw = await request.body()  # already read and cached by the route's body parsing
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):
        body = raw.decode("utf-8", "replace")
    headers = [request.headers.get(name, "").strip() for name in _REQUEST_HEADERS]
    return hashlib.sha256(json.dumps([body, headers]).encode()).hexdigest()


async def idempotent(runtime: Runtime, request: Request, produce: Callable[[], Awaitable[Response]]) -> Response:
    """Run `produce` once per key (per route and API key); store and replay its successful response."""
    given = request.headers.get("idempotency-key")
    if given is None:
        return await produce()
    if not 1 <= len(given) <= 200:
        raise ApiError(400, "Idempotency-Key must be 1-200 characters.", param="Idempotency-Key")
    owner = request.scope.get("state", {}).get("api_key_owner", "")
    key = f"{request.url.path}|{owner}|{given}"
    fingerprint = await request_fingerprint(request)
    store = runtime.deps.idempotency
    await runtime.idempotency_locks.acquire(key)  # a duplicate in flight waits for the first
    try:
        stored = await asyncio.to_thread(store.get, key)
        if stored is not None:
            if stored.request_hash != fingerprint:
                raise ApiError(422, "This Idempotency-Key was already used with a different request (body, session "
                               "or project); send a new key for a new request.", param="Idempotency-Key",
                               code="idempotency_key_reused")
            return Response(stored.body, status_code=stored.status, media_type="application/json",
                            headers={**json.loads(stored.headers), REPLAYED: "true"})
        response = await produce()
        if isinstance(response, JSONResponse) and response.status_code < 400:
            kept = {k: v for k, v in response.headers.items() if k.lower().startswith("x-session")}
            await asyncio.to_thread(store.put, key, response.status_code, bytes(response.body).decode(),
                                    json.dumps(kept), fingerprint)
        return response
    finally:
        runtime.idempotency_locks.release(key)
