"""RATE_LIMIT_PER_MINUTE across workers (DATABASE_URL): the token buckets in a Postgres table, each request's
take one atomic upsert, so N workers together allow what one would (not N times as much).

A bucket holds up to `per_minute` tokens and refills at `per_minute` a minute; a request takes one or is refused
with the seconds until one is back. `allowed` records whether the last take succeeded (an upsert returns only
the new row). Rows idle for a minute are full buckets, the same as none: they are swept now and then."""

from __future__ import annotations

import time
from collections.abc import Callable

from psycopg_pool import AsyncConnectionPool

SCHEMA = """CREATE TABLE IF NOT EXISTS rate_limit_buckets (
    identity TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    allowed BOOLEAN NOT NULL
)"""

REFILLED = "LEAST(%(cap)s, b.tokens + GREATEST(0, %(now)s - b.updated_at) * %(cap)s / 60.0)"
TAKE_SQL = f"""
INSERT INTO rate_limit_buckets AS b (identity, tokens, updated_at, allowed)
VALUES (%(identity)s, %(cap)s - 1, %(now)s, TRUE)
ON CONFLICT (identity) DO UPDATE SET
    tokens = CASE WHEN {REFILLED} >= 1 THEN {REFILLED} - 1 ELSE {REFILLED} END,
    allowed = {REFILLED} >= 1,
    updated_at = GREATEST(b.updated_at, %(now)s)
RETURNING tokens, allowed
"""
SWEEP_SECONDS = 60.0


class PgBuckets:
    """Token buckets shared by every worker on the database; `clock` is wall-clock seconds (workers on several
    machines agree on it as far as their clocks do)."""

    def __init__(self, pool: AsyncConnectionPool, clock: Callable[[], float] = time.time) -> None:
        self.pool = pool
        self.clock = clock
        self._swept = clock()

    async def setup(self) -> None:
        """Make the table (one worker at a time: `CREATE … IF NOT EXISTS` races in Postgres)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7423190013)")
            await conn.execute(SCHEMA)

    async def take(self, identity: str, per_minute: int) -> float:
        """0 if the request may go (a token taken), else the seconds until a token is back."""
        now = self.clock()
        async with self.pool.connection() as conn:
            row = await (await conn.execute(TAKE_SQL, {"identity": identity, "cap": float(per_minute),
                                                        "now": now})).fetchone()
            if now - self._swept > SWEEP_SECONDS:
                self._swept = now
                await conn.execute("DELETE FROM rate_limit_buckets WHERE updated_at < %s", (now - SWEEP_SECONDS,))
        assert row is not None
        tokens, allowed = float(row[0]), bool(row[1])
        return 0.0 if allowed else (1.0 - tokens) * 60.0 / per_minute
