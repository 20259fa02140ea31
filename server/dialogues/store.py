"""The dialogue jobs table (DATA_DIR/dialogues.db): request, status, ending, and at the end the turns and
metrics. While a dialogue runs, its turns are in the checkpointer (thread `dialogue:<id>`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from memory.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS dialogues (
    id TEXT PRIMARY KEY,
    batch_id TEXT,
    owner TEXT,
    topic TEXT NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    ending_reason TEXT,
    error TEXT,
    turns TEXT,
    metrics TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dialogues_status ON dialogues (status);
CREATE INDEX IF NOT EXISTS dialogues_batch ON dialogues (batch_id);
"""

UNFINISHED = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")


@dataclass
class DialogueRow:
    """One job."""

    id: str
    batch_id: str | None
    owner: str | None
    topic: str
    request: dict[str, Any]
    status: str
    ending_reason: str | None
    error: str | None
    turns: list[dict[str, Any]] | None
    metrics: dict[str, Any] | None
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: Any) -> DialogueRow:
        return cls(id=row["id"], batch_id=row["batch_id"], owner=row["owner"], topic=row["topic"],
                   request=json.loads(row["request"]),
                   status=row["status"], ending_reason=row["ending_reason"], error=row["error"],
                   turns=json.loads(row["turns"]) if row["turns"] else None,
                   metrics=json.loads(row["metrics"]) if row["metrics"] else None,
                   created_at=row["created_at"], updated_at=row["updated_at"])


class DialogueStore:
    """CRUD on the jobs table. Blocking: call through `asyncio.to_thread`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript(SCHEMA)

    def add(self, jobs: list[tuple[str, str, dict[str, Any]]], batch_id: str | None, owner: str | None = None
            ) -> None:
        """Queue (id, topic, request) jobs in one transaction: a batch is queued whole or not at all. `owner`:
        the API key fingerprint that may reach them (None: anyone)."""
        now = time.time()
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO dialogues (id, batch_id, owner, topic, request, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
                [(job_id, batch_id, owner, topic, json.dumps(request), now, now)
                 for job_id, topic, request in jobs])

    def get(self, job_id: str) -> DialogueRow | None:
        rows = self.db.query("SELECT * FROM dialogues WHERE id = ?", (job_id,))
        return DialogueRow.from_row(rows[0]) if rows else None

    def set_status(self, job_id: str, status: str, only_if: tuple[str, ...] = UNFINISHED) -> bool:
        """Move an unfinished job to `status`; False if it had already finished (a finished job stays so)."""
        marks = ", ".join("?" for _ in only_if)
        with self.db.transaction() as conn:
            cursor = conn.execute(f"UPDATE dialogues SET status = ?, updated_at = ? WHERE id = ? "
                                  f"AND status IN ({marks})", (status, time.time(), job_id, *only_if))
            return cursor.rowcount > 0

    def finish(self, job_id: str, status: str, ending_reason: str | None, error: str | None,
               turns: list[dict[str, Any]], metrics: dict[str, Any]) -> bool:
        """Record the outcome of a job that is still unfinished (a cancelled one keeps its status)."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE dialogues SET status = ?, ending_reason = ?, error = ?, turns = ?, metrics = ?, "
                "updated_at = ? WHERE id = ? AND status IN ('queued', 'running')",
                (status, ending_reason, error, json.dumps(turns), json.dumps(metrics), time.time(), job_id))
            return cursor.rowcount > 0

    def unfinished(self) -> list[str]:
        """Ids of queued and running jobs, oldest first (resumed at start-up)."""
        rows = self.db.query("SELECT id FROM dialogues WHERE status IN ('queued', 'running') ORDER BY rowid")
        return [row["id"] for row in rows]

    def counts(self, owner: str | None = None) -> dict[str, int]:
        """Jobs by status (`owner` None: everyone's)."""
        where, params = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())
        return {row["status"]: row["n"] for row in
                self.db.query(f"SELECT status, COUNT(*) AS n FROM dialogues {where} GROUP BY status", params)}

    def page(self, *, status: str | None = None, batch_id: str | None = None, topic: str | None = None,
             owner: str | None = None, after: int = 0, limit: int = 200) -> list[tuple[int, DialogueRow]]:
        """Jobs in creation order after rowid `after`, filtered (`owner` None: everyone's); with their rowid
        (the next page's cursor)."""
        where: list[str] = ["rowid > ?"]
        params: list[object] = [after]
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if status:
            where.append("status = ?")
            params.append(status)
        if batch_id:
            where.append("batch_id = ?")
            params.append(batch_id)
        if topic:
            where.append("instr(lower(topic), lower(?)) > 0")
            params.append(topic)
        rows = self.db.query(f"SELECT rowid AS seq, * FROM dialogues WHERE {' AND '.join(where)} "
                             f"ORDER BY rowid LIMIT ?", (*params, limit))
        return [(row["seq"], DialogueRow.from_row(row)) for row in rows]
