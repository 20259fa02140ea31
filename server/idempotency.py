"""`Idempotency-Key` on the non-streaming chat routes: a retry gets the first response, not a second turn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from server.errors import ApiError
from server.runtime import Runtime

REPLAYED = "Idempotent-Replayed"


async def idempotent(runtime: Runtime, request: Request, produce: Callable[[], Awaitable[Response]]) -> Response:
    """Run `produce` once per key (per route and API key); store and replay its successful response."""
    given = request.headers.get("idempotency-key")
    if given is None:
        return await produce()
    if not 1 <= len(given) <= 200:
        raise ApiError(400, "Idempotency-Key must be 1-200 characters.", param="Idempotency-Key")
    key = f"{request.url.path}|{request.scope.get('state', {}).get('api_key_index', '')}|{given}"
    store = runtime.deps.idempotency
    await runtime.idempotency_locks.acquire(key)  # a duplicate in flight waits for the first
    try:
        stored = await asyncio.to_thread(store.get, key)
        if stored is not None:
            status, body, headers = stored
            return Response(body, status_code=status, media_type="application/json",
                            headers={**json.loads(headers), REPLAYED: "true"})
        response = await produce()
        if isinstance(response, JSONResponse) and response.status_code < 400:
            kept = {k: v for k, v in response.headers.items() if k.lower().startswith("x-session")}
            await asyncio.to_thread(store.put, key, response.status_code, bytes(response.body).decode(),
                                    json.dumps(kept))
        return response
    finally:
        runtime.idempotency_locks.release(key)
