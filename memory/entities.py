"""Entities (name, type, notes) per memory scope: SQLite rows, embedded into their own Chroma collection."""

from __future__ import annotations

import builtins
import time
import uuid
from dataclasses import dataclass
from typing import Any

from memory.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT 'thing',
    notes TEXT NOT NULL DEFAULT '',
    source_session_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS entities_by_name ON entities(scope, name COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS entities_by_session ON entities(source_session_id);
"""


def vector_key(scope: str) -> str:
    """The vector-index key of a scope's entity collection (kept apart from its episodes)."""
    return f"entities|{scope}"


@dataclass(frozen=True)
class Entity:
    """One known entity."""

    id: str
    scope: str
    name: str
    type: str
    notes: str
    source_session_id: str | None = None

    @property
    def document(self) -> str:
        """The embedded and prompted form."""
        return f"{self.name} ({self.type}): {self.notes}".strip()


def _entity(row: Any) -> Entity:
    return Entity(row["id"], row["scope"], row["name"], row["type"], row["notes"], row["source_session_id"])


class EntityStore:
    """Entity rows. Methods block: call them through `asyncio.to_thread`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript(SCHEMA)

    def upsert(self, scope: str, name: str, type_: str, notes: str, session_id: str | None = None) -> Entity:
        """Create an entity, or update the one of the same name (case-insensitive) in the scope."""
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO entities (id, scope, name, type, notes, source_session_id, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(scope, name) DO UPDATE SET"
                " type = excluded.type, notes = excluded.notes, updated_at = excluded.updated_at",
                (uuid.uuid4().hex, scope, name.strip(), type_ or "thing", notes or "", session_id, now, now),
            )
            row = conn.execute("SELECT * FROM entities WHERE scope = ? AND name = ? COLLATE NOCASE",
                               (scope, name.strip())).fetchone()
        return _entity(row)

    def get(self, entity_id: str) -> Entity | None:
        rows = self.db.query("SELECT * FROM entities WHERE id = ?", (entity_id,))
        return _entity(rows[0]) if rows else None

    def get_many(self, ids: list[str]) -> dict[str, Entity]:
        if not ids:
            return {}
        rows = self.db.query(f"SELECT * FROM entities WHERE id IN ({','.join('?' * len(ids))})", tuple(ids))
        return {r["id"]: _entity(r) for r in rows}

    def list(self, scope: str) -> list[Entity]:
        """A scope's entities by name."""
        return [_entity(r) for r in self.db.query("SELECT * FROM entities WHERE scope = ? ORDER BY name", (scope,))]

    def any_in(self, scope: str) -> bool:
        """Whether the scope has any entity."""
        return bool(self.db.query("SELECT 1 FROM entities WHERE scope = ? LIMIT 1", (scope,)))

    def mentioned_in(self, scope: str, text: str, limit: int) -> builtins.list[Entity]:
        """Entities whose name appears in `text` (whatever the vectors say)."""
        rows = self.db.query(
            "SELECT * FROM entities WHERE scope = ? AND length(name) > 2 AND instr(lower(?), lower(name)) > 0"
            " ORDER BY length(name) DESC LIMIT ?", (scope, text, limit))
        return [_entity(r) for r in rows]

    def update(self, entity_id: str, name: str | None, type_: str | None, notes: str | None) -> Entity | None:
        values = {"name": name, "type": type_, "notes": notes}
        self.db.update_row("entities", entity_id, {k: v for k, v in values.items() if v is not None})
        return self.get(entity_id)

    def delete(self, entity_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM entities WHERE id = ?", (entity_id,))

    def of_session(self, session_id: str) -> builtins.list[Entity]:
        """Entities first extracted from one session."""
        return [_entity(r) for r in self.db.query("SELECT * FROM entities WHERE source_session_id = ?",
                                                  (session_id,))]

    def move_session(self, session_id: str, scope: str) -> None:
        """Entities a session contributed follow it to its new scope (name clashes stay behind)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE OR IGNORE entities SET scope = ? WHERE source_session_id = ?", (scope, session_id))
