"""Responses of requests sent with an `Idempotency-Key`, kept for a day, so a client's retry is not applied twice.

Each stored response carries the fingerprint of the request that made it: a later request under the same key
is a retry only if its fingerprint matches (the caller refuses it otherwise)."""

from __future__ import annotations

import sqlite3
import time
from typing import NamedTuple

from memory.db import Database, Dialect

SCHEMA: dict[Dialect, str] = {
    "sqlite": """
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    headers TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency (created_at);
""",
    "postgres": """
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT COLLATE "C" PRIMARY KEY,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    headers TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    request_hash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency (created_at);
""",
}
# Added to SQLite files after the table first shipped: rows stored before it have an empty fingerprint, which
# matches nothing. Postgres tables are born with it.
MIGRATION = "ALTER TABLE idempotency ADD COLUMN request_hash TEXT NOT NULL DEFAULT ''"
TTL_SECONDS = 24 * 3600
SWEEP: dict[Dialect, str] = {
    "sqlite": "DELETE FROM idempotency WHERE created_at <= ?",
    # Workers sweeping at once skip the rows another one is deleting, rather than queue (or deadlock) on them.
    "postgres": "DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency WHERE created_at <= ?"
                " FOR UPDATE SKIP LOCKED)",
}


class Stored(NamedTuple):
    """A stored response and the fingerprint of the request it answered."""

    status: int
    body: str
    headers: str
    request_hash: str


class IdempotencyStore:
    """Blocking: call through `asyncio.to_thread`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript(SCHEMA[db.dialect])
        if db.dialect != "sqlite":
            return
        try:
            db.executescript(MIGRATION)
        except sqlite3.OperationalError as exc:  # the column is there already
            if "duplicate column" not in str(exc):
                raise

    def get(self, key: str) -> Stored | None:
        rows = self.db.query("SELECT status, body, headers, request_hash FROM idempotency "
                             "WHERE key = ? AND created_at > ?", (key, time.time() - TTL_SECONDS))
        return Stored(rows[0]["status"], rows[0]["body"], rows[0]["headers"], rows[0]["request_hash"]) if rows else None

    def put(self, key: str, status: int, body: str, headers: str, request_hash: str) -> None:
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute(SWEEP[self.db.dialect], (now - TTL_SECONDS,))
            conn.execute("INSERT INTO idempotency (key, status, body, headers, created_at, request_hash) "
                         "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET status = excluded.status, "
                         "body = excluded.body, headers = excluded.headers, created_at = excluded.created_at, "
                         "request_hash = excluded.request_hash", (key, status, body, headers, now, request_hash))
