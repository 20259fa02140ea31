"""Per-key locks across workers (server/turns/pg_locks.py) on a real Postgres: two lock managers with pools of
their own stand for two workers. A session's turns never interleave across them, DOUBLE_TEXTING=reject's
try-lock sees the other worker's turn, and a worker whose connection dies (killed) releases its sessions."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from server.turns.pg_locks import IDEMPOTENCY_KEYS, SESSIONS, PgKeyedLocks, open_lock_pool

pytestmark = pytest.mark.anyio


@pytest.fixture
async def workers(postgres):
    """Two lock managers (as two workers would have) on one fresh database, and the database's URL."""
    url = postgres.database()
    pools = [await open_lock_pool(url, max_size=4, timeout=10), await open_lock_pool(url, max_size=4, timeout=10)]
    yield [PgKeyedLocks(pool, SESSIONS) for pool in pools], url
    for pool in pools:
        await pool.close()


async def waiting_on_a_lock(url: str, count: int = 1) -> None:
    """Until `count` backends of the database wait for an advisory lock (what Postgres itself says)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for _ in range(1000):
            row = await (await conn.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).fetchone()
            if row and row[0] >= count:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("nobody waited for the lock")


async def test_a_session_held_on_one_worker_waits_on_the_other_until_released(workers):
    (a, b), url = workers
    order: list[str] = []
    await a.acquire("s1")
    order.append("a runs")

    async def second() -> None:
        await b.acquire("s1")
        order.append("b runs")

    queued = asyncio.create_task(second())
    await waiting_on_a_lock(url)  # b is parked in Postgres behind a
    await b.acquire("s2")  # another session is not held up
    b.release("s2")
    order.append("a ends")
    a.release("s1")
    await asyncio.wait_for(queued, 10)
    assert order == ["a runs", "a ends", "b runs"]
    b.release("s1")
    await b.settle()
    await asyncio.wait_for(a.acquire("s1"), 10)  # and back to the first worker
    a.release("s1")
    await a.settle()


async def test_reject_mode_sees_the_other_workers_turn(workers):
    (a, b), _ = workers
    await a.acquire("s1")
    assert not await b.try_acquire("s1")  # DOUBLE_TEXTING=reject: 409 on the other worker too
    assert not await a.try_acquire("s1")  # and on this one
    assert b.busy() == 0  # a refused try leaves nothing held
    a.release("s1")
    await a.settle()
    assert await b.try_acquire("s1")
    assert not await a.try_acquire("s1")
    b.release("s1")
    assert await b.try_acquire("s1")  # this worker's own release is waited for, never a spurious 409
    b.release("s1")
    await b.settle()


async def test_sessions_and_idempotency_keys_do_not_share_locks(workers):
    (a, _), url = workers
    other = PgKeyedLocks(a.pool, IDEMPOTENCY_KEYS)
    pool = await open_lock_pool(url, max_size=2)
    try:
        await a.acquire("same-key")
        assert await PgKeyedLocks(pool, IDEMPOTENCY_KEYS).try_acquire("same-key")
        assert not await PgKeyedLocks(pool, SESSIONS).try_acquire("same-key")
    finally:
        await pool.close()
    a.release("same-key")
    await a.settle()
    assert other.busy() == 0


async def test_a_killed_workers_connection_releases_its_session(workers):
    (a, b), url = workers
    await a.acquire("s1")
    holder = a._conns["s1"].info.backend_pid
    queued = asyncio.create_task(b.acquire("s1"))
    await waiting_on_a_lock(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (holder,))  # as if the worker were killed
    await asyncio.wait_for(queued, 10)  # the lock died with its connection
    assert not await a.try_acquire("s1")  # and b holds it now
    a.release("s1")  # the dead worker's own release finds a broken connection: nothing raised, nothing held
    await a.settle()
    b.release("s1")
    await b.settle()
    await asyncio.wait_for(a.acquire("s1"), 10)  # the pool replaced the dead connection
    a.release("s1")
    await a.settle()


async def test_a_waiter_cancelled_in_postgres_leaves_nothing_held(workers):
    (a, b), url = workers
    await a.acquire("s1")
    queued = asyncio.create_task(b.acquire("s1"))
    await waiting_on_a_lock(url)
    queued.cancel()  # its client went away while it waited
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert b.busy() == 0
    a.release("s1")
    await a.settle()
    assert await asyncio.wait_for(b.try_acquire("s1"), 10)  # the cancelled wait did not take it behind our back
    b.release("s1")
    await b.settle()
