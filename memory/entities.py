"""Entities (name, type, notes) per memory scope: SQLite rows, embedded into their own Chroma collection."""

from __future__ import annotations

import builtins
import time
import uuid
from dataclasses import dataclass
from typing import Any

from memory.db import Database, Dialect
from memory.dialect_sql import FIND, is_unique_violation

SCHEMA: dict[Dialect, str] = {
    "sqlite": """
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
""",
    # One name per scope whatever its case: a unique index on lower(name) (Postgres has no NOCASE).
    "postgres": """
CREATE TABLE IF NOT EXISTS entities (
    id TEXT COLLATE "C" PRIMARY KEY,
    scope TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    type TEXT NOT NULL DEFAULT 'thing',
    notes TEXT NOT NULL DEFAULT '',
    source_session_id TEXT COLLATE "C",
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS entities_by_name ON entities(scope, lower(name));
CREATE INDEX IF NOT EXISTS entities_by_session ON entities(source_session_id);
""",
}
NAME_CONFLICT: dict[Dialect, str] = {"sqlite": "scope, name", "postgres": "scope, lower(name)"}
"""The upsert's conflict target: the unique index above."""


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


class NameTaken(ValueError):
    """A rename onto the name of another entity of the same scope."""


def _entity(row: Any) -> Entity:
    return Entity(row["id"], row["scope"], row["name"], row["type"], row["notes"], row["source_session_id"])


class EntityStore:
    """Entity rows. Methods block: call them through `asyncio.to_thread`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript(SCHEMA[db.dialect])

    def upsert(self, scope: str, name: str, type_: str, notes: str, session_id: str | None = None) -> Entity:
        """Create an entity, or update the one of the same name (case-insensitive) in the scope."""
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO entities (id, scope, name, type, notes, source_session_id, created_at, updated_at)"
                f" VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT({NAME_CONFLICT[self.db.dialect]}) DO UPDATE SET"
                " type = excluded.type, notes = excluded.notes, updated_at = excluded.updated_at",
                (uuid.uuid4().hex, scope, name.strip(), type_ or "thing", notes or "", session_id, now, now),
            )
            # lower() folds case as each dialect's unique index does (SQLite: NOCASE, ASCII letters; Postgres:
            # the index is on lower(name) itself), so this finds the row the upsert hit.
            row = conn.execute("SELECT * FROM entities WHERE scope = ? AND lower(name) = lower(?)",
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
            f"SELECT * FROM entities WHERE scope = ? AND length(name) > 2 AND {FIND[self.db.dialect]}(lower(?),"
            " lower(name)) > 0 ORDER BY length(name) DESC, name LIMIT ?", (scope, text, limit))
        return [_entity(r) for r in rows]

    def update(self, entity_id: str, name: str | None, type_: str | None, notes: str | None) -> Entity | None:
        """Edit an entity; `NameTaken` if another entity of its scope has the new name (whatever its case)."""
        values = {"name": name, "type": type_, "notes": notes}
        try:
            self.db.update_row("entities", entity_id, {k: v for k, v in values.items() if v is not None})
        except Exception as exc:
            if is_unique_violation(exc):
                raise NameTaken(f"An entity named '{name}' already exists in this scope.") from exc
            raise
        return self.get(entity_id)

    def delete(self, entity_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM entities WHERE id = ?", (entity_id,))

    def of_session(self, session_id: str) -> builtins.list[Entity]:
        """Entities first extracted from one session."""
        return [_entity(r) for r in self.db.query("SELECT * FROM entities WHERE source_session_id = ?",
                                                  (session_id,))]

    def move_session(self, session_id: str, scope: str) -> None:
        """Entities a session contributed follow it to its new scope (name clashes stay behind). One row at a
        time, each checked against what the earlier ones left: SQLite's `UPDATE OR IGNORE`, on both dialects."""
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT id FROM entities WHERE source_session_id = ? AND scope <> ?"
                                " ORDER BY created_at, id", (session_id, scope)).fetchall()
            for row in rows:
                conn.execute("UPDATE entities SET scope = ? WHERE id = ? AND NOT EXISTS (SELECT 1 FROM entities o"
                             " WHERE o.scope = ? AND lower(o.name) = lower(entities.name))",
                             (scope, row["id"], scope))
