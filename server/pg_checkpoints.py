"""Checkpoints in Postgres (the scale-out profile, DATABASE_URL): langgraph-checkpoint-postgres's async saver on
a `psycopg_pool.AsyncConnectionPool`, its tables made once however many workers start together.

The pool's connections take the options the saver's documentation requires: `autocommit=True` (each of its
statements commits by itself), `prepare_threshold=0` (no server-side prepared statements, which a pooler such
as PgBouncer would hand to another connection) and `row_factory=dict_row` (it reads rows by column name)."""

from __future__ import annotations

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from server.checkpoint_pruner import NamesSavedThreads

#: The advisory lock (a single bigint, apart from the two-int locks of sessions) that makes the saver's
#: migrations one worker at a time: its `CREATE INDEX CONCURRENTLY` cannot run inside a transaction, so a
#: transaction-scoped lock would not do; a session lock on a connection of its own does.
SETUP_LOCK = 7423190012

LATEST_SQL = ("SELECT checkpoint_id FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = '' "
              "ORDER BY checkpoint_id DESC LIMIT 1")


class RetainingPostgresSaver(NamesSavedThreads, AsyncPostgresSaver):
    """`AsyncPostgresSaver` that calls `on_put(thread_id)` after each checkpoint it saves (the retention
    policy's pruner, as `RetainingSaver` on SQLite), and can tell a thread's newest checkpoint cheaply."""

    async def latest_id(self, thread_id: str) -> str | None:
        """The id of the thread's newest root checkpoint (by primary key: no checkpoint is loaded), or None."""
        pool = self.conn
        assert isinstance(pool, AsyncConnectionPool)
        async with pool.connection() as conn:
            row = await (await conn.execute(LATEST_SQL, (thread_id,))).fetchone()
        return None if row is None else str(row["checkpoint_id"])

    async def aclose(self) -> None:
        """Close the pool (the runtime owns it)."""
        pool = self.conn
        if isinstance(pool, AsyncConnectionPool):
            await pool.close()


async def open_pg_saver(url: str, max_size: int = 10, timeout: float = 10.0) -> RetainingPostgresSaver:
    """The service's checkpointer on Postgres, its tables made (once: under an advisory lock)."""
    pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
        url, min_size=1, max_size=max_size, timeout=timeout, open=False, name="orchestrator-checkpoints",
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
    await pool.open(wait=True, timeout=timeout)
    try:
        saver = RetainingPostgresSaver(pool)
        await setup_once(saver, url)
    except BaseException:
        await pool.close()
        raise
    return saver


async def setup_once(saver: AsyncPostgresSaver, url: str) -> None:
    """`saver.setup()` while holding SETUP_LOCK: a second worker starting at the same moment waits, then finds
    the migrations applied (two at once would both insert version 0 into checkpoint_migrations and fail)."""
    async with await AsyncConnection.connect(url, autocommit=True) as guard:
        await guard.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK,))
        try:
            await saver.setup()
        finally:
            await guard.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))
