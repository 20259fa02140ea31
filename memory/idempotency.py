"""Responses of requests sent with an `Idempotency-Key`, kept for a day, so a client's retry is not applied twice."""

from __future__ import annotations

import time

from memory.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    headers TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""
TTL_SECONDS = 24 * 3600


class IdempotencyStore:
    """Blocking: call through `asyncio.to_thread`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript(SCHEMA)

    def get(self, key: str) -> tuple[int, str, str] | None:
        rows = self.db.query("SELECT status, body, headers FROM idempotency WHERE key = ? AND created_at > ?",
                             (key, time.time() - TTL_SECONDS))
        return (rows[0]["status"], rows[0]["body"], rows[0]["headers"]) if rows else None

    def put(self, key: str, status: int, body: str, headers: str) -> None:
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM idempotency WHERE created_at <= ?", (now - TTL_SECONDS,))
            conn.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?)", (key, status, body, headers, now))
