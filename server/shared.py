"""What the runtime opens differently when several workers share the storage (DATABASE_URL): the checkpointer
(SQLite file or Postgres pool) and the locks that order sessions and idempotency keys across workers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from config.settings import Settings
from server.checkpoint_pruner import RetainingSaver, open_saver
from server.pg_checkpoints import RetainingPostgresSaver, open_pg_saver
from server.pg_rate_limit import PgBuckets
from server.turns.locks import SettledSessions
from server.turns.pg_locks import IDEMPOTENCY_KEYS, SESSIONS, PgKeyedLocks, open_lock_pool


@dataclass
class Checkpoints:
    """The service's checkpointer and how to close it."""

    saver: RetainingSaver | RetainingPostgresSaver
    close: Callable[[], Awaitable[None]]
    head: Callable[[str], Awaitable[str | None]] | None = None
    """A thread's newest checkpoint id in a store other workers write too (None: this process owns it)."""

    def settled(self) -> SettledSessions:
        """The turn runner's settled-session set, checked against the shared store when there is one."""
        return SettledSessions(head=self.head)


async def open_checkpoints(settings: Settings) -> Checkpoints:
    """Postgres (DATABASE_URL) or the SQLite file in DATA_DIR."""
    if settings.database_url:
        saver = await open_pg_saver(settings.database_url, settings.database_pool_size)
        return Checkpoints(saver, saver.aclose, saver.latest_id)
    sqlite = await open_saver(settings.checkpoints_path)
    return Checkpoints(sqlite, sqlite.conn.close)


@dataclass
class SharedLocks:
    """Advisory locks of sessions and idempotency keys, on one pool of dedicated connections, and the rate
    limiter's buckets (server/pg_rate_limit.py, on the same pool: one short statement a request)."""

    pool: AsyncConnectionPool
    sessions: PgKeyedLocks
    idempotency: PgKeyedLocks
    rate_buckets: PgBuckets

    async def close(self) -> None:
        """Release what is still held in Postgres, then close the pool."""
        await self.sessions.settle()
        await self.idempotency.settle()
        await self.pool.close()


async def open_shared_locks(url: str) -> SharedLocks:
    """The pool and both sets of locks."""
    pool = await open_lock_pool(url)
    buckets = PgBuckets(pool)
    try:
        await buckets.setup()
    except BaseException:
        await pool.close()
        raise
    return SharedLocks(pool, PgKeyedLocks(pool, SESSIONS), PgKeyedLocks(pool, IDEMPOTENCY_KEYS), buckets)
