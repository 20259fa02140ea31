"""Sessions: created on first use, touched on every completed turn."""

from __future__ import annotations

import time

from memory.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    name TEXT,
    project_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    turn_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_by_update ON sessions(updated_at);
"""


class SessionStore:
    """Session rows. Methods block: call them through `asyncio.to_thread`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript(SCHEMA)

    def record_turn(self, session_id: str, now: float | None = None) -> None:
        """Create the session if it is new and count one more completed turn."""
        now = time.time() if now is None else now
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO sessions (id, created_at, updated_at, turn_count) VALUES (?, ?, ?, 1)"
                " ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at,"
                " turn_count = sessions.turn_count + 1",
                (session_id, now, now),
            )

    def get(self, session_id: str) -> dict | None:
        """One session as a dict, or None."""
        rows = self.db.query("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return dict(rows[0]) if rows else None

    def count_active(self, window_seconds: float, now: float | None = None) -> int:
        """Sessions with a completed turn in the last `window_seconds`."""
        since = (time.time() if now is None else now) - window_seconds
        return int(self.db.query("SELECT COUNT(*) AS n FROM sessions WHERE updated_at >= ?", (since,))[0]["n"])
