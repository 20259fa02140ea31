"""The SQL handle the memory stores share: the `Database` protocol and its SQLite implementation (WAL, a busy
timeout and one lock for writers). The Postgres implementation is `memory/pg.py`; a store written against the
protocol uses `?` placeholders and branches on `db.dialect` only where the two dialects differ."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgres"]


class Cursor(Protocol):
    """What `Connection.execute` returns (sqlite3's cursor, or psycopg's)."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What `Database.transaction` yields."""

    def execute(self, sql: str, params: Any = ...) -> Any: ...

    def executemany(self, sql: str, params: Any) -> Any: ...


class Database(Protocol):
    """A SQL store the memory stores run on. Rows read back index by column name (and position)."""

    dialect: Dialect

    def transaction(self) -> AbstractContextManager[Any]: ...

    def query(self, sql: str, params: tuple | dict = ()) -> list[Any]: ...

    def update_row(self, table: str, row_id: str, values: dict[str, object]) -> None: ...

    def executescript(self, script: str) -> None: ...

    def close(self) -> None: ...


class SqliteDatabase:
    """One sqlite3 connection used from worker threads (`asyncio.to_thread`), serialised by a lock."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path | str, busy_timeout_ms: int = 5000) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run statements atomically: all of them commit, or none does."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Read rows."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def update_row(self, table: str, row_id: str, values: dict[str, object]) -> None:
        """See `update_row` (module function)."""
        update_row(self, table, row_id, values)

    def executescript(self, script: str) -> None:
        """Apply a schema (idempotent `CREATE ... IF NOT EXISTS` statements)."""
        with self._lock:
            self._conn.executescript(script)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def update_row(db: Database, table: str, row_id: str, values: dict[str, object]) -> None:
    """`UPDATE table SET col = ?, …, updated_at = now WHERE id = ?` for the given columns (none: no-op), on
    either dialect. Table and column names come from the stores' code, never from a request."""
    if not values:
        return
    sets = ", ".join(f"{column} = ?" for column in values)
    with db.transaction() as conn:
        conn.execute(f"UPDATE {table} SET {sets}, updated_at = ? WHERE id = ?", (*values.values(), time.time(), row_id))
