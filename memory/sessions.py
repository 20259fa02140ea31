"""Sessions and projects: rows in the memory database. Sessions are created on first use."""

from __future__ import annotations

import builtins
import time
import uuid
from typing import Any

from memory.db import Connection, Database, Dialect

SCHEMA: dict[Dialect, str] = {
    "sqlite": """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    name TEXT,
    project_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    turn_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_by_update ON sessions(updated_at);
CREATE INDEX IF NOT EXISTS sessions_by_project ON sessions(project_id, updated_at);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
""",
    # Born with the owner column (no Postgres store predates it), last as on a migrated SQLite file; times are
    # epoch seconds as on SQLite.
    "postgres": """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT,
    project_id TEXT COLLATE "C",
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    turn_count INTEGER NOT NULL DEFAULT 0,
    owner TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_update ON sessions(updated_at);
CREATE INDEX IF NOT EXISTS sessions_by_project ON sessions(project_id, updated_at);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    owner TEXT
);
""",
}
OWNED_TABLES = ("sessions", "projects")
"""Tables with an `owner` column: the fingerprint of the API key that created the row (API_KEY_SCOPED_SESSIONS),
NULL for rows made without one. Databases from before it get the column on open."""

OWNER_INDEXES = """
CREATE INDEX IF NOT EXISTS sessions_by_owner ON sessions(owner, updated_at);
CREATE INDEX IF NOT EXISTS projects_by_owner ON projects(owner, created_at);
"""

DEFAULT_SCOPE = "default"


def scope_of(project_id: str | None, owner: str | None = None) -> str:
    """The memory scope of a project; sessions without one share the default scope (one per owner)."""
    if project_id:
        return f"project:{project_id}"
    return f"{DEFAULT_SCOPE}:{owner}" if owner else DEFAULT_SCOPE


def visible_to(row: dict | None, owner: str | None) -> bool:
    """Whether a session or project row exists for this owner (None: not scoping, every row does)."""
    return row is not None and (owner is None or row.get("owner") == owner)


_UNSET: Any = object()


class SessionStore:
    """Session and project rows. Methods block: call them through `asyncio.to_thread`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript(SCHEMA[db.dialect])
        if db.dialect == "sqlite":
            self._add_owner_columns()
        db.executescript(OWNER_INDEXES)

    def _add_owner_columns(self) -> None:
        """`owner TEXT` on sessions and projects, added in place to a SQLite database made before it."""
        for table in OWNED_TABLES:
            columns = {row["name"] for row in self.db.query(f"PRAGMA table_info({table})")}
            if "owner" not in columns:
                with self.db.transaction() as conn:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN owner TEXT")

    # Sessions -------------------------------------------------------------------------------------
    def ensure(self, session_id: str, project_id: str | None = None, owner: str | None = None) -> dict:
        """The session, created on first use (with `project_id`, which must exist, and `owner`)."""
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO sessions (id, project_id, owner, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO NOTHING",
                (session_id, project_id, owner, now, now),
            )
            row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return dict(row)

    def create(self, session_id: str | None, name: str | None, project_id: str | None,
               owner: str | None = None) -> dict | None:
        """A new session; None if the id is taken."""
        session_id = session_id or uuid.uuid4().hex
        if not self._insert_new("sessions", id=session_id, name=name, project_id=project_id, owner=owner):
            return None
        return self.get(session_id)

    def _insert_new(self, table: str, **values: Any) -> bool:
        """Insert a row stamped with created/updated times, unless its id is taken; whether it was."""
        now = time.time()
        values = {**values, "created_at": now, "updated_at": now}
        columns = ", ".join(values)
        with self.db.transaction() as conn:
            cur = conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(values))})"
                               " ON CONFLICT(id) DO NOTHING", tuple(values.values()))
        return cur.rowcount > 0

    def record_turn(self, session_id: str, now: float | None = None) -> None:
        """Create the session if it is new and count one more completed turn."""
        with self.db.transaction() as conn:
            self.count_turns(conn, session_id, 1, now)

    @staticmethod
    def count_turns(conn: Connection, session_id: str, turns: int, now: float | None = None) -> None:
        """`record_turn` for `turns` turns, inside the caller's transaction (a turn's episode commit)."""
        now = time.time() if now is None else now
        conn.execute(
            "INSERT INTO sessions (id, created_at, updated_at, turn_count) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at,"
            " turn_count = sessions.turn_count + excluded.turn_count",
            (session_id, now, now, turns),
        )

    def get(self, session_id: str) -> dict | None:
        """One session as a dict, or None."""
        rows = self.db.query("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return dict(rows[0]) if rows else None

    def list(self, project_id: str | None = None, limit: int = 50, offset: int = 0,
             owner: str | None = None) -> tuple[list[dict], int]:
        """Sessions, newest activity first, optionally of one project and/or one owner; and how many in all."""
        filters = {"project_id": project_id, "owner": owner}
        given = {column: value for column, value in filters.items() if value}
        where = ("WHERE " + " AND ".join(f"{column} = ?" for column in given)) if given else ""
        params = tuple(given.values())
        total = self.db.query(f"SELECT COUNT(*) AS n FROM sessions {where}", params)[0]["n"]
        rows = self.db.query(
            f"SELECT * FROM sessions {where} ORDER BY updated_at DESC, id LIMIT ? OFFSET ?", (*params, limit, offset)
        )
        return [dict(r) for r in rows], int(total)

    def update(self, session_id: str, name: Any = _UNSET, project_id: Any = _UNSET) -> dict | None:
        """Rename and/or move a session (project_id None: out of any project)."""
        values = {"name": name, "project_id": project_id}
        self.db.update_row("sessions", session_id, {k: v for k, v in values.items() if v is not _UNSET})
        return self.get(session_id)

    def set_name_if_unnamed(self, session_id: str, name: str) -> bool:
        """Name a session unless someone named it meanwhile (a user's name is never overwritten)."""
        with self.db.transaction() as conn:
            cur = conn.execute("UPDATE sessions SET name = ? WHERE id = ? AND (name IS NULL OR name = '')",
                               (name, session_id))
        return cur.rowcount == 1

    def count_active(self, window_seconds: float, now: float | None = None) -> int:
        """Sessions with a completed turn in the last `window_seconds`."""
        since = (time.time() if now is None else now) - window_seconds
        return int(self.db.query("SELECT COUNT(*) AS n FROM sessions WHERE updated_at >= ?", (since,))[0]["n"])

    # Projects -------------------------------------------------------------------------------------
    def create_project(self, project_id: str | None, name: str, description: str | None,
                       owner: str | None = None) -> dict | None:
        """A new project; None if the id is taken."""
        project_id = project_id or uuid.uuid4().hex
        if not self._insert_new("projects", id=project_id, name=name, description=description, owner=owner):
            return None
        return self.get_project(project_id)

    def get_project(self, project_id: str) -> dict | None:
        """One project with its session count, or None."""
        rows = self.db.query(
            "SELECT p.*, (SELECT COUNT(*) FROM sessions s WHERE s.project_id = p.id) AS session_count"
            " FROM projects p WHERE p.id = ?", (project_id,))
        return dict(rows[0]) if rows else None

    def list_projects(self, owner: str | None = None) -> builtins.list[dict]:
        """All projects (or one owner's), newest first."""
        where, params = ("WHERE p.owner = ?", (owner,)) if owner else ("", ())
        rows = self.db.query(
            "SELECT p.*, (SELECT COUNT(*) FROM sessions s WHERE s.project_id = p.id) AS session_count"
            f" FROM projects p {where} ORDER BY p.created_at DESC, p.id", params)
        return [dict(r) for r in rows]

    def update_project(self, project_id: str, name: str | None, description: Any = _UNSET) -> dict | None:
        """Rename a project and/or change its description."""
        values = {"name": name if name is not None else _UNSET, "description": description}
        self.db.update_row("projects", project_id, {k: v for k, v in values.items() if v is not _UNSET})
        return self.get_project(project_id)

    def delete_project_row(self, project_id: str) -> None:
        """Remove the project row (its sessions are removed by the caller first)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))

    def delete_session_row(self, session_id: str) -> None:
        """Remove the session row."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
