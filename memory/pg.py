"""The `Database` protocol on PostgreSQL (psycopg 3 with a `psycopg_pool` pool), for the scale-out profile
(`DATABASE_URL`): the same store code as on SQLite, called from worker threads (`asyncio.to_thread`).

Statements are written once with SQLite's `?` placeholders and translated here (`?` → `%s`, a literal `%` →
`%%`); a store branches on `db.dialect` only where the dialects differ (schemas, full-text search, upserts).
Rows index by column name and by position, like `sqlite3.Row`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.cursor import BaseCursor
from psycopg.rows import BaseRowFactory, RowMaker
from psycopg_pool import ConnectionPool

from memory.db import Dialect, update_row


class Row(dict):
    """A row by column name (`row["id"]`) and by position (`row[0]`), as sqlite3.Row."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return list(self.values())[key]
        return super().__getitem__(key)


def _row_factory(cursor: BaseCursor[Any, Any]) -> RowMaker[Row]:
    names = [column.name for column in cursor.description or ()]

    def make(values: Sequence[Any]) -> Row:
        return Row(zip(names, values, strict=True))

    return make


ROWS: BaseRowFactory[Row] = _row_factory


def translate(sql: str) -> str:
    """SQLite's `?` placeholders as psycopg's `%s` (a literal `%` doubled first). Statements come from the
    stores' code, never from a request; none has a `?` inside a string literal."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """One pooled connection inside a transaction, with the `?` placeholders translated."""

    def __init__(self, conn: psycopg.Connection[Row]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor[Row]:
        return self.raw.execute(translate(sql), params or None)

    def executemany(self, sql: str, params: Any) -> psycopg.Cursor[Row]:
        cursor = self.raw.cursor()
        cursor.executemany(translate(sql), params)
        return cursor


class PgDatabase:
    """A pool of connections to one Postgres database. Each `transaction` is one connection's transaction;
    `query` runs on any free connection."""

    dialect: Dialect = "postgres"

    def __init__(self, url: str, max_size: int = 10, timeout: float = 10.0) -> None:
        self.url = url
        # reconnect_timeout: psycopg_pool retries a lost connection with a doubling delay until it gives up
        # (5 min by default), so after a 60 s outage the pool came back 60 s after Postgres did (measured).
        # Giving up after `timeout` lets the next request start a fresh attempt at once: 0.0 s (measured).
        self.pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            url, min_size=1, max_size=max_size, timeout=timeout, open=True, reconnect_timeout=timeout,
            kwargs={"autocommit": True, "row_factory": ROWS}, name="orchestrator-memory")
        try:
            self.pool.wait(timeout=timeout)
        except BaseException:
            self.pool.close()  # or its workers go on trying to connect in the background
            raise

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """Run statements atomically: all of them commit, or none does."""
        with self.pool.connection() as conn, conn.transaction():
            yield PgConnection(conn)

    def query(self, sql: str, params: tuple | dict = ()) -> list[Row]:
        """Read rows."""
        with self.pool.connection() as conn:
            return conn.execute(translate(sql), params or None).fetchall()

    def update_row(self, table: str, row_id: str, values: dict[str, object]) -> None:
        """See memory/db.py `update_row`."""
        update_row(self, table, row_id, values)

    def executescript(self, script: str) -> None:
        """Apply a schema (idempotent `CREATE ... IF NOT EXISTS` statements). Two workers starting at once
        would race on `CREATE ... IF NOT EXISTS` (it is not atomic in Postgres): a transaction-scoped advisory
        lock makes schema changes one at a time."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(7423190011)")
            conn.execute(script)

    def close(self) -> None:
        """Close the pool."""
        self.pool.close()
