"""Episodes, one per exchange: SQLite rows (the source of truth) with an FTS5 index for BM25 recall.

An episode can be written before its turn is safe (`committed = 0`): the server's turn writes it in
`persist`, but the turn only exists once its checkpoint is saved, after the graph run. Until `commit` an
episode has no FTS5 row, is not embedded and is never recalled or listed, so a turn cut by a crash leaves
no ghost in memory; start-up repair commits or discards what a crash left (server/turn_repair.py).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from memory import turn_recalls
from memory.db import Database
from memory.lexical import LexicalPlanner
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
    committed INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS episodes_by_session ON episodes(session_id, seq);
CREATE INDEX IF NOT EXISTS episodes_pending ON episodes(seq) WHERE indexed = 0;
CREATE INDEX IF NOT EXISTS episodes_by_reply ON episodes(ai_msg_id);
CREATE INDEX IF NOT EXISTS episodes_by_scope ON episodes(scope, seq);
CREATE VIRTUAL TABLE IF NOT EXISTS episodes_fts USING fts5(scope_token, document, tokenize='unicode61');
-- The newest episodes again (LexicalPlanner.recent_rows of them): BM25 over this table counts its words in
-- a bounded number of rows, whatever the size of the store (memory/lexical.py).
CREATE VIRTUAL TABLE IF NOT EXISTS episodes_recent_fts USING fts5(scope_token, document, tokenize='unicode61');
"""

# After the column exists (stores made before it get it by ALTER TABLE: their episodes are all committed).
UNCOMMITTED_INDEX = "CREATE INDEX IF NOT EXISTS episodes_uncommitted ON episodes(session_id) WHERE committed = 0"


FTS_TABLES = ("episodes_fts", "episodes_recent_fts")


def render_document(user_text: str, assistant_text: str, created_at: float,
                    speakers: tuple[str | None, str | None] = (None, None)) -> str:
    """The text that is indexed: dated, with speaker labels (both measurably improve recall); an imported
    conversation's speakers by name."""
    day = datetime.fromtimestamp(created_at, UTC).strftime("%Y-%m-%d")
    user, assistant = speakers[0] or "User", speakers[1] or "Assistant"
    return f"[{day}] {user}: {user_text.strip()}\n{assistant}: {assistant_text.strip()}"


@dataclass(frozen=True)
class Episode:
    """One stored exchange."""

    session_id: str
    scope: str
    user_text: str
    assistant_text: str
    user_msg_id: str | None = None
    ai_msg_id: str | None = None
    created_at: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    recall: dict | None = None
    """What recall put in this turn's prompt (memory/turn_recalls.py), stored with the episode."""
    speakers: tuple[str | None, str | None] = (None, None)
    """Names the document labels the two sides with (an import's `name`s); None: User and Assistant."""

    @property
    def document(self) -> str:
        """The indexed text of this episode."""
        return render_document(self.user_text, self.assistant_text, self.created_at, self.speakers)


@dataclass(frozen=True)
class StoredEpisode:
    """An episode as read back for recall or indexing."""

    id: str
    session_id: str
    scope: str
    document: str
    ai_msg_id: str | None
    created_at: float
    score: float = 0.0
    user_text: str = ""


def _stored(row, score: float = 0.0) -> StoredEpisode:
    return StoredEpisode(
        id=row["id"],
        session_id=row["session_id"],
        scope=row["scope"],
        document=row["document"],
        ai_msg_id=row["ai_msg_id"],
        created_at=row["created_at"],
        score=score,
        user_text=row["user_text"],
    )


class EpisodeStore:
    """Writes and searches episodes. Methods block: call them through `asyncio.to_thread`."""

    def __init__(self, db: Database, planner: LexicalPlanner | None = None) -> None:
        self.db = db
        self.planner = planner or LexicalPlanner()
        db.executescript(SCHEMA)
        if not any(row["name"] == "committed" for row in db.query("PRAGMA table_info(episodes)")):
            db.executescript("ALTER TABLE episodes ADD COLUMN committed INTEGER NOT NULL DEFAULT 1")
        db.executescript(UNCOMMITTED_INDEX)
        turn_recalls.ensure_schema(db)
        with db.transaction() as conn:  # stores made before the recent table existed: fill it once
            if not conn.execute("SELECT 1 FROM episodes_recent_fts LIMIT 1").fetchone():
                conn.execute(
                    "INSERT INTO episodes_recent_fts (rowid, scope_token, document) SELECT rowid, scope_token,"
                    " document FROM episodes_fts WHERE rowid > (SELECT coalesce(max(rowid), 0) FROM episodes_fts)"
                    " - ?", (self.planner.recent_rows,))

    def add(self, episode: Episode, committed: bool = True) -> None:
        """Store an episode and its FTS5 row in one transaction; with `committed=False`, the row alone,
        invisible until `commit_session` (or gone by `discard_uncommitted`)."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO episodes (id, session_id, scope, user_msg_id, ai_msg_id, user_text,"
                " assistant_text, document, created_at, committed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    episode.id,
                    episode.session_id,
                    episode.scope,
                    episode.user_msg_id,
                    episode.ai_msg_id,
                    episode.user_text,
                    episode.assistant_text,
                    episode.document,
                    episode.created_at,
                    int(committed),
                ),
            )
            if episode.recall is not None:
                turn_recalls.write(conn, episode.id, episode.recall)
            if committed:
                self._index_lexically(conn, [(cur.lastrowid or 0, episode.scope, episode.document)])

    def add_uncommitted(self, episodes: list[Episode]) -> None:
        """Store many episodes in one transaction, invisible until `commit_session` (an import: its
        checkpoint is written between the two, as a turn's is)."""
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO episodes (id, session_id, scope, user_msg_id, ai_msg_id, user_text, assistant_text,"
                " document, created_at, committed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                [(e.id, e.session_id, e.scope, e.user_msg_id, e.ai_msg_id, e.user_text, e.assistant_text,
                  e.document, e.created_at) for e in episodes])

    def message_ids(self, session_id: str) -> set[str]:
        """The message ids the session's episodes were made of (an import skips them: idempotent)."""
        rows = self.db.query("SELECT user_msg_id, ai_msg_id FROM episodes WHERE session_id = ?", (session_id,))
        return {i for r in rows for i in (r["user_msg_id"], r["ai_msg_id"]) if i}

    def _index_lexically(self, conn, rows: list[tuple[int, str, str]]) -> None:
        """FTS5 rows for (seq, scope, document), and the recent table trimmed to its size."""
        for table in FTS_TABLES:
            conn.executemany(f"INSERT INTO {table} (rowid, scope_token, document) VALUES (?, ?, ?)",
                             [(seq, scope_token(scope), document) for seq, scope, document in rows])
        conn.execute("DELETE FROM episodes_recent_fts WHERE rowid <= ?",
                     (max(seq for seq, _, _ in rows) - self.planner.recent_rows,))

    def commit_session(self, session_id: str, ai_msg_ids: list[str | None] | None = None,
                       also: Callable[[sqlite3.Connection, int], None] | None = None) -> int:
        """Make the session's uncommitted episodes (those ending with `ai_msg_ids`; None: all) searchable
        and indexable, and run `also(conn, how_many)` in the same transaction (the server counts the turns
        on the session there). Returns how many were committed."""
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT seq, scope, document, ai_msg_id FROM episodes"
                                " WHERE session_id = ? AND committed = 0", (session_id,)).fetchall()
            rows = [r for r in rows if ai_msg_ids is None or r["ai_msg_id"] in ai_msg_ids]
            if not rows:
                return 0
            self._index_lexically(conn, [(r["seq"], r["scope"], r["document"]) for r in rows])
            conn.executemany("UPDATE episodes SET committed = 1 WHERE seq = ?", [(r["seq"],) for r in rows])
            if also is not None:
                also(conn, len(rows))
            return len(rows)

    def discard_uncommitted(self, session_id: str) -> int:
        """Delete the session's uncommitted episodes (their turn was undone); returns how many."""
        with self.db.transaction() as conn:
            turn_recalls.delete_session(conn, session_id, uncommitted_only=True)
            return conn.execute("DELETE FROM episodes WHERE session_id = ? AND committed = 0",
                                (session_id,)).rowcount

    def uncommitted(self) -> dict[str, list[str | None]]:
        """Sessions with uncommitted episodes, and the reply ids those episodes end with."""
        grouped: dict[str, list[str | None]] = {}
        for row in self.db.query("SELECT session_id, ai_msg_id FROM episodes WHERE committed = 0"):
            grouped.setdefault(row["session_id"], []).append(row["ai_msg_id"])
        return grouped

    def search(self, scope: str, text: str, limit: int) -> list[StoredEpisode]:
        """BM25 hits for `text` inside `scope`, best first (the scope is matched inside MATCH). Words that
        most episodes contain are left out, and large stores are searched within a bounded number of rows
        (memory/lexical.py); if only ubiquitous words are left, there are no hits."""
        if limit <= 0:
            return []
        hits: list[tuple[float, int]] = []
        # Matching the scope's token makes BM25 count all of the scope's rows once per search (2 ms at 100k):
        # a store that holds no other scope is searched without it.
        alone = not self.db.query("SELECT 1 FROM episodes WHERE scope < ? OR scope > ? LIMIT 1", (scope, scope))
        for step in self.planner.plan(self.db, scope, query_terms(text)):
            table = "episodes_recent_fts" if step.recent else "episodes_fts"
            sql = f"SELECT rowid, bm25({table}, 0.0, 1.0) AS score FROM {table} WHERE {table} MATCH ?"
            params: list = [match_expression(None if alone else scope, text, list(step.terms))]
            for bound, op in ((step.after, ">"), (step.upto, "<=")):
                if bound is not None:
                    sql += f" AND rowid {op} ?"
                    params.append(bound)
            rows = self.db.query(sql + " ORDER BY score LIMIT ?", (*params, limit))
            hits += [(float(r["score"]), int(r["rowid"])) for r in rows]
        hits = sorted(hits)[:limit]  # bm25() is lower for better matches
        if not hits:
            return []
        marks = ",".join("?" * len(hits))
        by_seq = {r["seq"]: r for r in self.db.query(f"SELECT * FROM episodes WHERE seq IN ({marks})",
                                                      tuple(seq for _, seq in hits))}
        return [_stored(by_seq[seq], -score) for score, seq in hits if seq in by_seq]

    def get_many(self, ids: list[str]) -> dict[str, StoredEpisode]:
        """Episodes by id (ids that no longer exist are left out)."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.query(f"SELECT * FROM episodes WHERE id IN ({marks}) AND committed = 1", tuple(ids))
        return {r["id"]: _stored(r) for r in rows}

    def for_session(self, session_id: str, limit: int = 50) -> list[StoredEpisode]:
        """The newest episodes of one session, oldest first."""
        rows = self.db.query(
            "SELECT * FROM episodes WHERE session_id = ? AND committed = 1 ORDER BY seq DESC LIMIT ?",
            (session_id, limit),
        )
        return [_stored(r) for r in reversed(rows)]

    def pending(self, limit: int) -> list[StoredEpisode]:
        """Committed episodes not yet embedded into the vector index, oldest first."""
        rows = self.db.query("SELECT * FROM episodes WHERE indexed = 0 AND committed = 1 ORDER BY seq LIMIT ?",
                             (limit,))
        return [_stored(r) for r in rows]

    def mark_indexed(self, ids: list[str], documents: list[str] | None = None) -> None:
        """Record that these episodes are in the vector index; with `documents` (what was embedded), only
        those still holding that text: one rewritten meanwhile (`rewrite_reply`) stays pending."""
        if not ids:
            return
        with self.db.transaction() as conn:
            if documents is not None:
                conn.executemany("UPDATE episodes SET indexed = 1 WHERE id = ? AND document = ?",
                                 list(zip(ids, documents, strict=True)))
                return
            marks = ",".join("?" * len(ids))
            conn.execute(f"UPDATE episodes SET indexed = 1 WHERE id IN ({marks})", tuple(ids))

    def by_reply(self, ai_msg_id: str) -> StoredEpisode | None:
        """The committed episode that ended with this reply, or None."""
        rows = self.db.query("SELECT * FROM episodes WHERE ai_msg_id = ? AND committed = 1", (ai_msg_id,))
        return _stored(rows[0]) if rows else None

    def rewrite_reply(self, ai_msg_id: str, assistant_text: str) -> StoredEpisode | None:
        """Replace the assistant's words of the committed episode that ended with this reply (a reply its user
        cut off: what they heard of it), and its rows in both FTS5 tables, in one transaction. It is left
        unindexed, and the indexer embeds it again (drop its old vector first: `by_reply` finds it; an old
        vector the indexer adds meanwhile is replaced, see `mark_indexed`). None if no committed episode ends
        with that reply."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM episodes WHERE ai_msg_id = ? AND committed = 1",
                               (ai_msg_id,)).fetchone()
            if row is None:
                return None
            document = render_document(row["user_text"], assistant_text, row["created_at"])
            conn.execute("UPDATE episodes SET assistant_text = ?, document = ?, indexed = 0 WHERE seq = ?",
                         (assistant_text, document, row["seq"]))
            for table in FTS_TABLES:  # a row the recent table has already let go of stays out of it
                conn.execute(f"UPDATE {table} SET document = ? WHERE rowid = ?", (document, row["seq"]))
        return _stored({**dict(row), "document": document})

    def remove_reply(self, ai_msg_id: str,
                     also: Callable[[sqlite3.Connection], None] | None = None) -> StoredEpisode | None:
        """Delete the committed episode that ended with this reply (its turn was taken back), with its FTS5
        rows and recall record, and run `also(conn)` in the same transaction (the server uncounts the turn
        there). Its vector is the caller's. None if no committed episode ends with that reply."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM episodes WHERE ai_msg_id = ? AND committed = 1",
                               (ai_msg_id,)).fetchone()
            if row is None:
                return None
            for table in FTS_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (row["seq"],))
            conn.execute("DELETE FROM turn_recalls WHERE episode_id = ?", (row["id"],))
            conn.execute("DELETE FROM episodes WHERE seq = ?", (row["seq"],))
            if also is not None:
                also(conn)
        return _stored(row)

    def count(self) -> int:
        """How many episodes are stored."""
        return int(self.db.query("SELECT COUNT(*) AS n FROM episodes")[0]["n"])

    def has_reply(self, ai_msg_id: str) -> bool:
        """Whether the exchange that ended with this reply was stored."""
        return bool(self.db.query("SELECT 1 FROM episodes WHERE ai_msg_id = ? LIMIT 1", (ai_msg_id,)))

    def ids_by_scope(self, session_id: str) -> dict[str, list[str]]:
        """A session's episode ids, grouped by scope (to find their vectors)."""
        grouped: dict[str, list[str]] = {}
        for row in self.db.query("SELECT id, scope FROM episodes WHERE session_id = ? AND committed = 1",
                                 (session_id,)):
            grouped.setdefault(row["scope"], []).append(row["id"])
        return grouped

    def delete_session(self, session_id: str) -> None:
        """Remove a session's episodes and their FTS5 rows."""
        with self.db.transaction() as conn:
            for table in FTS_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT seq FROM episodes WHERE session_id = ?)",
                             (session_id,))
            turn_recalls.delete_session(conn, session_id)
            conn.execute("DELETE FROM episodes WHERE session_id = ?", (session_id,))

    def move_session(self, session_id: str, scope: str) -> None:
        """Put a session's episodes in another scope; they are re-embedded there by the indexer."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE episodes SET scope = ?, indexed = 0 WHERE session_id = ?", (scope, session_id))
            for table in FTS_TABLES:
                conn.execute(f"UPDATE {table} SET scope_token = ? WHERE rowid IN"
                             " (SELECT seq FROM episodes WHERE session_id = ?)", (scope_token(scope), session_id))
