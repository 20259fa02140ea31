"""Per-key locks across workers (the scale-out profile): a Postgres advisory lock held for as long as the key is,
on a connection of its own, beside the in-process lock that orders this worker's own waiters.

Two requests for one session on two workers never interleave: each turn holds `pg_advisory_lock(namespace,
hashtext(key))` from before its session is opened until its run (summary included) has ended. The lock lives
with its connection, so a worker killed mid-turn (kill -9, a lost machine) releases its sessions as soon as
Postgres sees the connection go. Keys hash to 32 bits: two keys that collide only wait for each other.

Each held key keeps one pooled connection busy; the pool (`LOCK_POOL_SIZE` per worker by default) bounds how
many sessions a worker runs at once, further turns wait for a connection."""

from __future__ import annotations

import asyncio
import logging

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from memory.pg_checkpoint_retention import SESSION_LOCKS
from server.turns.locks import KeyedLocks

log = logging.getLogger(__name__)

#: The first half of the two-int advisory lock key: what the second half (a hash of the key) names.
SESSIONS = SESSION_LOCKS  # the checkpoints' pruner checks these (memory/pg_checkpoint_retention.py)
IDEMPOTENCY_KEYS = 2
#: Connections a worker's locks may hold at once (one per session with a turn running or waiting for Postgres).
LOCK_POOL_SIZE = 64


async def _unlock_everything(conn: AsyncConnection) -> None:
    """A connection back in the pool holds no lock (the pool's reset: a bug elsewhere cannot leak a session)."""
    await conn.execute("SELECT pg_advisory_unlock_all()")


async def open_lock_pool(url: str, max_size: int = LOCK_POOL_SIZE, timeout: float = 30.0) -> AsyncConnectionPool:
    """The pool the advisory locks take their connections from (autocommit: a lock outlives no transaction)."""
    pool: AsyncConnectionPool = AsyncConnectionPool(
        url, min_size=1, max_size=max_size, timeout=timeout, open=False, name="orchestrator-locks",
        kwargs={"autocommit": True}, reset=_unlock_everything)
    await pool.open(wait=True, timeout=timeout)
    return pool


class PgKeyedLocks(KeyedLocks):
    """`KeyedLocks` whose keys are also held in Postgres, so that every worker on the database sees them."""

    def __init__(self, pool: AsyncConnectionPool, namespace: int) -> None:
        super().__init__()
        self.pool = pool
        self.namespace = namespace
        self._conns: dict[str, AsyncConnection] = {}
        self._unlocking: dict[str, asyncio.Task] = {}

    async def acquire(self, key: str) -> None:
        """Wait for the key in this worker, then in Postgres (behind any other worker's holder)."""
        await super().acquire(key)
        try:
            await self._settle(key)
            await self._lock(key, wait=True)
        except BaseException:
            super().release(key)
            raise

    async def try_acquire(self, key: str) -> bool:
        """Take the key if no worker holds it (`pg_try_advisory_lock`); False at once otherwise."""
        if not await super().try_acquire(key):
            return False
        try:
            await self._settle(key)
            if await self._lock(key, wait=False):
                return True
        except BaseException:
            super().release(key)
            raise
        super().release(key)
        return False

    def release(self, key: str) -> None:
        """Let the key go: the in-process lock now, the advisory lock in a task of its own (a waiter of this
        worker waits for it in `acquire`; one of another worker, in Postgres), so a cancelled caller cannot
        leave it held."""
        conn = self._conns.pop(key)
        task = asyncio.get_running_loop().create_task(self._unlock(key, conn))
        self._unlocking[key] = task
        task.add_done_callback(lambda done: self._unlocking.get(key) is done and self._unlocking.pop(key))
        super().release(key)

    async def settle(self) -> None:
        """Wait until every released key is released in Postgres too (shutdown, tests)."""
        while self._unlocking:
            await asyncio.gather(*list(self._unlocking.values()), return_exceptions=True)

    async def _settle(self, key: str) -> None:
        pending = self._unlocking.get(key)
        if pending is not None:
            await asyncio.shield(pending)

    async def _lock(self, key: str, wait: bool) -> bool:
        conn = await self.pool.getconn()
        function = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
        try:
            cursor = await conn.execute(f"SELECT {function}(%s, hashtext(%s))", (self.namespace, key))
            row = await cursor.fetchone()
        except BaseException:
            # Cancelled while Postgres was still granting it, or the connection broke: closing the connection
            # is the one way to be sure it holds nothing.
            await self._discard(conn)
            raise
        if wait or (row is not None and row[0]):
            self._conns[key] = conn
            return True
        await self.pool.putconn(conn)
        return False

    async def _unlock(self, key: str, conn: AsyncConnection) -> None:
        try:
            await conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (self.namespace, key))
        except Exception:  # a broken connection: its locks went with it
            log.warning("unlocking %s over a broken connection; it is closed (which releases it)", key)
            await self._discard(conn)
            return
        await self.pool.putconn(conn)

    async def _discard(self, conn: AsyncConnection) -> None:
        await conn.close()
        await self.pool.putconn(conn)  # a closed connection is dropped by the pool, which opens another
