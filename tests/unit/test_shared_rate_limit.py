"""RATE_LIMIT_PER_MINUTE across workers (server/pg_rate_limit.py): two workers on one Postgres allow together
what one would; buckets refill with time and are swept when full."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.pg_rate_limit import PgBuckets
from server.turns.pg_locks import open_lock_pool


@pytest.mark.anyio
async def test_two_workers_share_each_clients_bucket(postgres):
    url = postgres.database()
    now = [1000.0]
    pools = [await open_lock_pool(url, max_size=2), await open_lock_pool(url, max_size=2)]
    try:
        a, b = (PgBuckets(pool, clock=lambda: now[0]) for pool in pools)
        await a.setup()
        await b.setup()  # a second worker's start finds the table
        waits = [await worker.take("key:k1", 3) for worker in (a, b, a, b)]
        assert waits[:3] == [0.0, 0.0, 0.0] and waits[3] == pytest.approx(20.0)  # 3 a minute: one back in 20 s
        assert await b.take("key:k2", 3) == 0.0  # another client has its own bucket
        now[0] += 20.0
        assert await a.take("key:k1", 3) == 0.0 and await b.take("key:k1", 3) > 0
        now[0] += 61.0  # idle a minute: full again, and swept on a later take
        assert [await b.take("key:k1", 3) for _ in range(3)] == [0.0, 0.0, 0.0]
        async with pools[0].connection() as conn:
            rows = await (await conn.execute("SELECT identity FROM rate_limit_buckets")).fetchall()
        assert [r[0] for r in rows] == ["key:k1"]  # k2's full bucket went
    finally:
        for pool in pools:
            await pool.close()


def test_the_limit_holds_across_two_services(settings, postgres, tmp_path):
    url = postgres.database()
    a = settings.model_copy(update={"database_url": url, "rate_limit_per_minute": 1, "api_keys": "k1"})
    b = a.model_copy(update={"data_dir": tmp_path / "b", "chroma_dir": tmp_path / "b-chroma"})
    key = {"Authorization": "Bearer k1"}
    with TestClient(create_app(a)) as first, TestClient(create_app(b)) as second:
        assert first.get("/sessions", headers=key).status_code == 200
        refused = second.get("/sessions", headers=key)  # one a minute for this key, whichever worker answers
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
