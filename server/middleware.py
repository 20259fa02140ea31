"""Pure-ASGI middleware: request ids and one JSON log line per request, body size limit, API keys,
per-key rate limiting. Streams pass through untouched."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import ApiError, error_body
from server.metrics import Metrics

access_log = logging.getLogger("orchestrator.access")
OPEN_PATHS = ("/health", "/")
OPEN_PREFIXES = ("/web/",)
"""The web page's files hold no data: they load without a key, and the page asks for one (server/web/)."""


async def _reject(scope: Scope, send: Send, error: ApiError, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(scope["path"], error)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None


def route_of(scope: Scope) -> str:
    """The route template (`/sessions/{session_id}`), so metrics do not explode with ids."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def route_fields(turn: dict) -> dict:
    """The turn's class and route for its log line (graph/routing.py); nothing for an unrouted request."""
    route = turn.get("route")
    if not route:
        return {}
    return {"query_class": route["class"], "class_confidence": route["confidence"], "class_method": route["method"],
            "route_backend": route.get("backend"), "route_model": route.get("model"),
            "route_recall_top_k": route.get("recall_top_k"), "route_max_tokens": route.get("max_tokens"),
            "cache": turn.get("cache"), "classify_ms": route.get("classify_ms")}


class RequestLog:
    """`X-Request-Id` in and out, a JSON access log line and metrics per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = (_header(scope, b"x-request-id") or "")[:100] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status, info = 500, {}

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", request_id.encode()))
                for key, value in headers:
                    if key in (b"x-session-id", b"x-recall-degraded"):
                        info[key.decode()] = value.decode()
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_of(scope)
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.request_latency.labels(route, scope["method"]).observe(elapsed)
            turn = scope["state"].get("turn") or {}
            usage = turn.get("usage") or {}
            prompt = turn.get("prompt") or {}
            access_log.info("request", extra={"fields": {
                "request_id": request_id, "method": scope["method"], "route": route, "path": scope["path"],
                "status": status, "latency_ms": round(elapsed * 1000, 2),
                "session_id": info.get("x-session-id"),
                "recall_degraded": bool(turn.get("recall_degraded")) or info.get("x-recall-degraded") == "true",
                "recall_ms": turn.get("recall_ms"), "inference_ms": turn.get("inference_ms"),
                "tokens_in": usage.get("input_tokens"), "tokens_out": usage.get("output_tokens"),
                "tokens_estimated": turn.get("usage_estimated") or None,
                "tool_calls_dropped": turn.get("tool_calls_dropped") or None,
                "prompt_tokens_offered": prompt.get("tokens_offered"), "prompt_tokens_sent": prompt.get("tokens_sent"),
                "prompt_trimmed": prompt.get("trimmed") or None,
                **route_fields(turn),
            }})


class BodyLimit:
    """413 for a body over `max_bytes` (or the limit of its path prefix in `limits`), whether announced by
    Content-Length or not."""

    def __init__(self, app: ASGIApp, max_bytes: int, limits: dict[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits = limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        max_bytes, setting = next(((n, name) for prefix, (n, name) in self.limits.items()
                                   if scope["path"].startswith(prefix)), (self.max_bytes, "MAX_REQUEST_BYTES"))
        too_big = ApiError(413, f"Request body over {max_bytes} bytes ({setting}).", code="request_too_large")
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            return await _reject(scope, send, too_big)
        received, answered = 0, False

        async def counted() -> Message:
            # Past the limit: answer 413 here, and tell the app the client left (whatever it then tries to
            # send is dropped). Raising instead would reach FastAPI's body parser, which turns it into a 400.
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    answered = True
                    await _reject(scope, send, too_big)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not answered:
                await send(message)

        await self.app(scope, counted, guarded)


class ApiKeys:
    """With API_KEYS set, every route but /health (and the web page's files) needs `Authorization: Bearer <key>`
    or `X-API-Key`.
    Keys are compared in constant time and never logged; a request's key is known downstream only by its
    fingerprint (`state.api_key_owner`: 16 hex digits of its SHA-256, which API_KEY_SCOPED_SESSIONS stores on
    the rows it creates and idempotency keys its stored responses by), never by its place in API_KEYS, which
    a reordered list would hand to another key. With RATE_LIMIT_PER_MINUTE set, each key (or, without keys,
    each client address) has that many requests a minute, counted across workers when they share Postgres."""

    def __init__(self, app: ASGIApp, keys: list[str], per_minute: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.digests = [hashlib.sha256(k.encode()).digest() for k in keys]
        self.owners = [digest.hex()[:16] for digest in self.digests]
        self.per_minute = per_minute
        self.clock = clock
        # (tokens, last update), least recently updated first: a bucket idle for a minute is full, and a full
        # bucket is the same as none, so the oldest ones are dropped as they fill (see `_evict_full`).
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _key_index(self, scope: Scope) -> int | None:
        auth = _header(scope, b"authorization") or ""
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else (_header(scope, b"x-api-key") or "")
        digest = hashlib.sha256(given.encode()).digest()
        found = None
        for i, known in enumerate(self.digests):  # no early exit: timing does not tell which key matched
            if hmac.compare_digest(digest, known) and given:
                found = i
        return found

    async def _wait(self, scope: Scope, identity: str) -> float:
        """The seconds to wait before this request may go (0: now): in the buckets every worker shares when the
        storage is (DATABASE_URL: server/pg_rate_limit.py), else in this process's."""
        if self.per_minute <= 0:
            return 0.0
        runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
        shared = getattr(runtime, "shared_locks", None)
        if shared is not None:
            return await shared.rate_buckets.take(identity, self.per_minute)
        return self._allow(identity)

    def _allow(self, key: str) -> float:
        """0 if the request may go, else the seconds until it may (token bucket, `per_minute` a minute)."""
        if self.per_minute <= 0:
            return 0.0
        now = self.clock()
        self._evict_full(now)
        tokens, last = self.buckets.pop(key, (float(self.per_minute), now))
        tokens = self._refilled(tokens, last, now)
        if tokens < 1.0:
            self.buckets[key] = (tokens, now)
            return (1.0 - tokens) * 60.0 / self.per_minute
        self.buckets[key] = (tokens - 1.0, now)
        return 0.0

    def _refilled(self, tokens: float, last: float, now: float) -> float:
        return min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60.0)

    def _evict_full(self, now: float) -> None:
        """Drop buckets that have refilled, oldest first, so the map holds only clients seen in the last
        minute (per client address it would otherwise grow with every address ever seen). The first bucket
        that is not full stops the sweep: every later one was updated more recently. O(1) amortised."""
        while self.buckets:
            key, (tokens, last) = next(iter(self.buckets.items()))
            if self._refilled(tokens, last, now) < self.per_minute:
                return
            del self.buckets[key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIXES)
                or not (self.digests or self.per_minute)):
            return await self.app(scope, receive, send)
        if self.digests:
            key = self._key_index(scope)
            if key is None:
                return await _reject(scope, send, ApiError(
                    401, "Missing or invalid API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
                    code="invalid_api_key"), {"WWW-Authenticate": "Bearer"})
            identity = f"key:{self.owners[key]}"
            scope.setdefault("state", {})["api_key_owner"] = self.owners[key]
        else:
            identity = f"addr:{(scope.get('client') or ('?',))[0]}"
        wait = await self._wait(scope, identity)
        if wait:
            return await _reject(scope, send, ApiError(
                429, f"Rate limit of {self.per_minute} requests a minute reached (RATE_LIMIT_PER_MINUTE).",
                code="rate_limited"), {"Retry-After": str(max(1, math.ceil(wait)))})
        await self.app(scope, receive, send)
