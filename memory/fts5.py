"""Lexical recall on SQLite: the `episodes` table and two FTS5 tables beside it, searched with BM25.

`episodes_fts` holds every committed episode; `episodes_recent_fts` the newest `LexicalPlanner.recent_rows`
of them again, so that BM25 over the newest rows counts its words in a bounded number of rows whatever the
size of the store (memory/lexical.py plans each search). The scope is a token of its own in each row and is
matched inside MATCH. The FTS5 rows follow the episode's: written when it is committed, rewritten, deleted or
moved with it, in the caller's transaction. The Postgres counterpart is memory/pg_lexical.py.
"""

from __future__ import annotations

from typing import Any

from memory.db import Database
from memory.episode_types import EPISODE_INDEXES
from memory.lexical import LexicalPlanner, Pass
from memory.text import match_expression, query_terms, scope_token

SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    user_msg_id TEXT,
    ai_msg_id TEXT,
    user_text TEXT NOT NULL,
    assistant_text TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at REAL NOT NULL,
    indexed INTEGER NOT NULL DEFAULT 0,
    committed INTEGER NOT NULL DEFAULT 1,
    written_at REAL
);
{indexes}CREATE VIRTUAL TABLE IF NOT EXISTS episodes_fts USING fts5(scope_token, document, tokenize='unicode61');
-- The newest episodes again (LexicalPlanner.recent_rows of them): BM25 over this table counts its words in
-- a bounded number of rows, whatever the size of the store (memory/lexical.py).
CREATE VIRTUAL TABLE IF NOT EXISTS episodes_recent_fts USING fts5(scope_token, document, tokenize='unicode61');
""".replace("{indexes}", EPISODE_INDEXES)

# After the column exists (stores made before it get it by ALTER TABLE: their episodes are all committed).
UNCOMMITTED_INDEX = "CREATE INDEX IF NOT EXISTS episodes_uncommitted ON episodes(session_id) WHERE committed = 0"

FTS_TABLES = ("episodes_fts", "episodes_recent_fts")


class Fts5Index:
    """The episodes' schema and lexical index on SQLite. Methods taking `conn` run in the caller's transaction."""

    def __init__(self, db: Database, planner: LexicalPlanner) -> None:
        self.db = db
        self.planner = planner

    def setup(self) -> None:
        """Create the tables (idempotent), upgrading stores made by older versions in place."""
        db = self.db
        db.executescript(SCHEMA)
        columns = {row["name"] for row in db.query("PRAGMA table_info(episodes)")}
        if "committed" not in columns:
            db.executescript("ALTER TABLE episodes ADD COLUMN committed INTEGER NOT NULL DEFAULT 1")
        if "written_at" not in columns:  # when the row was stored (start-up repair's age; older rows: NULL)
            db.executescript("ALTER TABLE episodes ADD COLUMN written_at REAL")
        db.executescript(UNCOMMITTED_INDEX)
        with db.transaction() as conn:  # stores made before the recent table existed: fill it once
            if not conn.execute("SELECT 1 FROM episodes_recent_fts LIMIT 1").fetchone():
                conn.execute(
                    "INSERT INTO episodes_recent_fts (rowid, scope_token, document) SELECT rowid, scope_token,"
                    " document FROM episodes_fts WHERE rowid > (SELECT coalesce(max(rowid), 0) FROM episodes_fts)"
                    " - ?", (self.planner.recent_rows,))

    def add(self, conn: Any, rows: list[tuple[int, str, str]]) -> None:
        """FTS5 rows for committed episodes (seq, scope, document), and the recent table trimmed to its size."""
        for table in FTS_TABLES:
            conn.executemany(f"INSERT INTO {table} (rowid, scope_token, document) VALUES (?, ?, ?)",
                             [(seq, scope_token(scope), document) for seq, scope, document in rows])
        conn.execute("DELETE FROM episodes_recent_fts WHERE rowid <= ?",
                     (max(seq for seq, _, _ in rows) - self.planner.recent_rows,))

    def rewrite(self, conn: Any, seq: int, document: str) -> None:
        """An episode's new text."""
        for table in FTS_TABLES:  # a row the recent table has already let go of stays out of it
            conn.execute(f"UPDATE {table} SET document = ? WHERE rowid = ?", (document, seq))

    def remove(self, conn: Any, seq: int | None = None, session_id: str | None = None) -> None:
        """Drop the FTS5 rows of one episode (`seq`) or of a session's episodes (before they are deleted)."""
        for table in FTS_TABLES:
            if seq is not None:
                conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (seq,))
            else:
                conn.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT seq FROM episodes WHERE session_id = ?)",
                             (session_id,))

    def rescope(self, conn: Any, session_id: str, scope: str) -> None:
        """A session's episodes moved to another scope."""
        for table in FTS_TABLES:
            conn.execute(f"UPDATE {table} SET scope_token = ? WHERE rowid IN"
                         " (SELECT seq FROM episodes WHERE session_id = ?)", (scope_token(scope), session_id))

    def plan(self, scope: str, terms: list[str]) -> list[Pass]:
        """How a search for `terms` in `scope` is done (memory/lexical.py)."""
        return self.planner.plan(self.db, scope, terms)

    def search(self, scope: str, text: str, limit: int) -> list[tuple[float, int]]:
        """(score, seq) of the BM25 hits for `text` inside `scope`, best first (higher is better). Words that
        most episodes contain are left out, and large stores are searched within a bounded number of rows
        (memory/lexical.py); if only ubiquitous words are left, there are no hits."""
        hits: list[tuple[float, int]] = []
        # Matching the scope's token makes BM25 count all of the scope's rows once per search (2 ms at 100k):
        # a store that holds no other scope is searched without it.
        alone = not self.db.query("SELECT 1 FROM episodes WHERE scope < ? OR scope > ? LIMIT 1", (scope, scope))
        for step in self.plan(scope, query_terms(text)):
            table = "episodes_recent_fts" if step.recent else "episodes_fts"
            sql = f"SELECT rowid, bm25({table}, 0.0, 1.0) AS score FROM {table} WHERE {table} MATCH ?"
            params: list = [match_expression(None if alone else scope, text, list(step.terms))]
            for bound, op in ((step.after, ">"), (step.upto, "<=")):
                if bound is not None:
                    sql += f" AND rowid {op} ?"
                    params.append(bound)
            rows = self.db.query(sql + " ORDER BY score LIMIT ?", (*params, limit))
            hits += [(float(r["score"]), int(r["rowid"])) for r in rows]
        return [(-score, seq) for score, seq in sorted(hits)[:limit]]  # bm25() is lower for better matches
