"""The rate limiter's token buckets: per client address they must not grow with every address ever seen."""

from __future__ import annotations

import asyncio

from server.middleware import ApiKeys


async def _ok(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _request(limiter: ApiKeys, address: str) -> int:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/sessions", "method": "GET", "headers": [], "client": (address, 1234)}
    asyncio.run(limiter(scope, receive, send))
    return sent[0]["status"]


def test_full_buckets_are_evicted_and_limits_still_hold():
    now = [0.0]
    limiter = ApiKeys(_ok, keys=[], per_minute=3, clock=lambda: now[0])
    for i in range(2000):  # a scan from many addresses, one request each
        assert _request(limiter, f"10.0.{i // 250}.{i % 250}") == 200
        now[0] += 0.01
    statuses = [_request(limiter, "192.0.2.1") for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # a busy client is limited as before
    now[0] += 61.0  # every bucket of the scan has refilled: a full bucket is the same as none
    assert _request(limiter, "198.51.100.7") == 200
    assert len(limiter.buckets) <= 2, len(limiter.buckets)
    statuses = [_request(limiter, "198.51.100.7") for _ in range(3)]
    assert statuses == [200, 200, 429]  # its bucket was kept while not full


def test_a_limited_clients_bucket_is_not_evicted_early():
    now = [0.0]
    limiter = ApiKeys(_ok, keys=[], per_minute=2, clock=lambda: now[0])
    assert [_request(limiter, "192.0.2.9") for _ in range(3)] == [200, 200, 429]
    now[0] += 20.0  # 0.67 of a token back: still limited
    for i in range(100):
        _request(limiter, f"10.1.0.{i}")
    assert _request(limiter, "192.0.2.9") == 429
