"""Episodes, one per exchange: rows in the memory database (the source of truth, SQLite or Postgres) with a
lexical index for BM25 recall (FTS5 on SQLite, memory/fts5.py; a `tsvector` on Postgres, memory/pg_lexical.py).

An episode can be written before its turn is safe (`committed = 0`): the server's turn writes it in
`persist`, but the turn only exists once its checkpoint is saved, after the graph run. Until `commit` an
episode is not lexically searchable, is not embedded and is never recalled or listed, so a turn cut by a
crash leaves no ghost in memory; start-up repair commits or discards what a crash left (server/turns/commit.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from memory import turn_recalls
from memory.db import Database
from memory.episode_types import Episode, StoredEpisode, render_document, stored_episode
from memory.fts5 import Fts5Index
from memory.lexical import LexicalPlanner
from memory.pg_lexical import PgLexicalIndex

LexicalIndex = Fts5Index | PgLexicalIndex

__all__ = ["COLUMNS", "Episode", "EpisodeStore", "LexicalIndex", "StoredEpisode", "render_document"]

UNINDEXED, INDEXED, CONTEXT_INDEXED = 0, 1, 2
"""An episode's `indexed`: not in the vector index yet; in it (by the vector `EPISODE_EMBEDDING` made: with
`context-idle`, its user message's, until it is upgraded when the service is idle: memory/indexer.py); in it
by its context vector (the exchange and the one before it), for good."""

COLUMNS = "seq, id, session_id, scope, user_msg_id, ai_msg_id, user_text, assistant_text, document, created_at"
"""What reads fetch (not `*`: Postgres' generated `terms` would come back as text, for nothing)."""


class EpisodeStore:
    """Writes and searches episodes. Methods block: call them through `asyncio.to_thread`.

    On Postgres, several workers' indexers share the pending rows: each `claim`s its batch (`FOR UPDATE SKIP
    LOCKED`, stamped with `claimed_at`), so each episode is embedded once; a claim older than `claim_seconds`
    is a crashed worker's and is taken over."""

    def __init__(self, db: Database, planner: LexicalPlanner | None = None, lexical: LexicalIndex | None = None,
                 claim_seconds: float = 120.0) -> None:
        self.db = db
        self.claim_seconds = claim_seconds
        self.lexical: LexicalIndex = lexical or (
            PgLexicalIndex(db) if db.dialect == "postgres" else Fts5Index(db, planner or LexicalPlanner()))
        self.lexical.setup()
        turn_recalls.ensure_schema(db)

    @property
    def planner(self) -> LexicalPlanner:
        """How searches of large stores are planned (memory/lexical.py)."""
        return self.lexical.planner

    @planner.setter
    def planner(self, planner: LexicalPlanner) -> None:
        self.lexical.planner = planner

    def add(self, episode: Episode, committed: bool = True) -> None:
        """Store an episode and its lexical index in one transaction; with `committed=False`, the row alone,
        invisible until `commit_session` (or gone by `discard_uncommitted`)."""
        with self.db.transaction() as conn:
            seq = conn.execute(
                "INSERT INTO episodes (id, session_id, scope, user_msg_id, ai_msg_id, user_text,"
                " assistant_text, document, created_at, committed, written_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                (episode.id, episode.session_id, episode.scope, episode.user_msg_id, episode.ai_msg_id,
                 episode.user_text, episode.assistant_text, episode.document, episode.created_at, int(committed),
                 time.time()),
            ).fetchone()["seq"]
            if episode.recall is not None:
                turn_recalls.write(conn, episode.id, episode.recall)
            if committed:
                self.lexical.add(conn, [(seq, episode.scope, episode.document)])

    def add_uncommitted(self, episodes: list[Episode]) -> None:
        """Store many episodes in one transaction, invisible until `commit_session` (an import: its
        checkpoint is written between the two, as a turn's is)."""
        now = time.time()
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO episodes (id, session_id, scope, user_msg_id, ai_msg_id, user_text, assistant_text,"
                " document, created_at, committed, written_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                [(e.id, e.session_id, e.scope, e.user_msg_id, e.ai_msg_id, e.user_text, e.assistant_text,
                  e.document, e.created_at, now) for e in episodes])

    def message_ids(self, session_id: str) -> set[str]:
        """The message ids the session's episodes were made of (an import skips them: idempotent)."""
        rows = self.db.query("SELECT user_msg_id, ai_msg_id FROM episodes WHERE session_id = ?", (session_id,))
        return {i for r in rows for i in (r["user_msg_id"], r["ai_msg_id"]) if i}

    def replies(self, session_id: str) -> dict[str | None, tuple[str | None, str]]:
        """The session's committed episodes by reply id: (user message id, assistant text) (an export)."""
        rows = self.db.query("SELECT user_msg_id, ai_msg_id, assistant_text FROM episodes"
                             " WHERE session_id = ? AND committed = 1", (session_id,))
        return {r["ai_msg_id"]: (r["user_msg_id"], r["assistant_text"]) for r in rows}

    def commit_session(self, session_id: str, ai_msg_ids: list[str | None] | None = None,
                       also: Callable[[Any, int], None] | None = None) -> int:
        """Make the session's uncommitted episodes (those ending with `ai_msg_ids`; None: all) searchable
        and indexable, and run `also(conn, how_many)` in the same transaction (the server counts the turns
        on the session there). Returns how many were committed."""
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT seq, scope, document, ai_msg_id FROM episodes"
                                " WHERE session_id = ? AND committed = 0 ORDER BY seq", (session_id,)).fetchall()
            # Re-checked row by row: two workers' start-up repairs committing the same episode count it once.
            rows = [r for r in rows if (ai_msg_ids is None or r["ai_msg_id"] in ai_msg_ids) and conn.execute(
                "UPDATE episodes SET committed = 1 WHERE seq = ? AND committed = 0", (r["seq"],)).rowcount]
            if not rows:
                return 0
            self.lexical.add(conn, [(r["seq"], r["scope"], r["document"]) for r in rows])
            if also is not None:
                also(conn, len(rows))
            return len(rows)

    def discard_uncommitted(self, session_id: str, before: float | None = None) -> int:
        """Delete the session's uncommitted episodes (their turn was undone), or only those stored before
        `before` (epoch seconds: start-up repair beside other workers' running turns; when the row was written,
        not the exchange's date, which an import sets in the past); returns how many."""
        where, params = "session_id = ? AND committed = 0", (session_id,)  # type: str, tuple
        if before is not None:
            where, params = where + " AND coalesce(written_at, 0) < ?", (session_id, before)
        with self.db.transaction() as conn:
            conn.execute(f"DELETE FROM turn_recalls WHERE episode_id IN (SELECT id FROM episodes WHERE {where})",
                         params)
            return conn.execute(f"DELETE FROM episodes WHERE {where}", params).rowcount

    def uncommitted(self, before: float | None = None) -> dict[str, list[str | None]]:
        """Sessions with uncommitted episodes (only those written before `before`, when given), and the reply
        ids those episodes end with."""
        grouped: dict[str, list[str | None]] = {}
        sql, params = "SELECT session_id, ai_msg_id FROM episodes WHERE committed = 0", ()  # type: str, tuple
        if before is not None:
            sql, params = sql + " AND coalesce(written_at, 0) < ?", (before,)
        for row in self.db.query(sql + " ORDER BY seq", params):
            grouped.setdefault(row["session_id"], []).append(row["ai_msg_id"])
        return grouped

    def search(self, scope: str, text: str, limit: int) -> list[StoredEpisode]:
        """BM25 hits for `text` inside `scope`, best first (the scope is matched inside the lexical query:
        memory/fts5.py, memory/pg_lexical.py)."""
        if limit <= 0:
            return []
        hits = self.lexical.search(scope, text, limit)
        if not hits:
            return []
        marks = ",".join("?" * len(hits))
        by_seq = {r["seq"]: r for r in self.db.query(
            f"SELECT {COLUMNS} FROM episodes WHERE seq IN ({marks}) AND committed = 1", tuple(seq for _, seq in hits))}
        return [stored_episode(by_seq[seq], score) for score, seq in hits if seq in by_seq]

    def get_many(self, ids: list[str]) -> dict[str, StoredEpisode]:
        """Episodes by id (ids that no longer exist are left out)."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.query(f"SELECT {COLUMNS} FROM episodes WHERE id IN ({marks}) AND committed = 1", tuple(ids))
        return {r["id"]: stored_episode(r) for r in rows}

    def for_session(self, session_id: str, limit: int = 50) -> list[StoredEpisode]:
        """The newest episodes of one session, oldest first."""
        rows = self.db.query(
            f"SELECT {COLUMNS} FROM episodes WHERE session_id = ? AND committed = 1 ORDER BY seq DESC LIMIT ?",
            (session_id, limit),
        )
        return [stored_episode(r) for r in reversed(rows)]

    def dated(self, scope: str, start: float, end: float, limit: int) -> list[StoredEpisode]:
        """The scope's episodes dated in [start, end) (epoch seconds), in the order they were said."""
        rows = self.db.query(f"SELECT {COLUMNS} FROM episodes WHERE scope = ? AND created_at >= ? AND created_at < ?"
                             " AND committed = 1 ORDER BY seq LIMIT ?", (scope, start, end, limit))
        return [stored_episode(r) for r in rows]

    def pending(self, limit: int, level: int = UNINDEXED) -> list[StoredEpisode]:
        """Committed episodes at this indexing `level` (by default not yet embedded into the vector index;
        `INDEXED`: in it by a vector other than their context's), oldest first
        (whoever claimed them)."""
        rows = self.db.query(f"SELECT {COLUMNS} FROM episodes WHERE indexed = ? AND committed = 1 ORDER BY seq"
                             " LIMIT ?", (level, limit))
        return [stored_episode(r) for r in rows]

    def claim(self, limit: int, level: int = UNINDEXED) -> list[StoredEpisode]:
        """`pending` episodes for this indexer to embed, oldest first. On Postgres each is claimed in the same
        statement (`FOR UPDATE SKIP LOCKED`: another worker's claim running at the same moment skips them,
        and a committed claim keeps them out of others' batches until `mark_indexed`/`release` or the lease
        ends); on SQLite one process holds the store, and this is `pending`."""
        if self.db.dialect == "sqlite":
            return self.pending(limit, level)
        now = time.time()
        with self.db.transaction() as conn:
            rows = conn.execute(
                "UPDATE episodes SET claimed_at = ? WHERE seq IN (SELECT seq FROM episodes WHERE indexed = ?"
                " AND committed = 1 AND (claimed_at IS NULL OR claimed_at < ?) ORDER BY seq LIMIT ?"
                f" FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}",
                (now, level, now - self.claim_seconds, limit)).fetchall()
        return [stored_episode(r) for r in sorted(rows, key=lambda r: r["seq"])]

    def release(self, ids: list[str]) -> None:
        """Give claimed episodes back (their embedding failed, or they changed meanwhile): any worker's
        next `claim` takes them. No-op on SQLite."""
        if ids and self.db.dialect == "postgres":
            marks = ",".join("?" * len(ids))
            with self.db.transaction() as conn:
                conn.execute(f"UPDATE episodes SET claimed_at = NULL WHERE id IN ({marks})", tuple(ids))

    def mark_indexed(self, episodes: Sequence[StoredEpisode | Episode], level: int = INDEXED,
                     was: int = UNINDEXED) -> None:
        """Record that these episodes' vectors (made from them as read) are in the index, at `level`; only
        those still as read, at level `was`, in the same scope with the same text: one rewritten meanwhile
        (`rewrite_reply`) or moved to another scope stays pending. Their claims end (after the vectors were
        written: a worker taking a rewritten one next writes its vector last)."""
        if not episodes:
            return
        with self.db.transaction() as conn:
            conn.executemany("UPDATE episodes SET indexed = ? WHERE id = ? AND indexed = ? AND scope = ?"
                             " AND document = ?", [(level, e.id, was, e.scope, e.document) for e in episodes])
        self.release([e.id for e in episodes])

    def by_reply(self, ai_msg_id: str) -> StoredEpisode | None:
        """The committed episode that ended with this reply, or None."""
        rows = self.db.query(f"SELECT {COLUMNS} FROM episodes WHERE ai_msg_id = ? AND committed = 1", (ai_msg_id,))
        return stored_episode(rows[0]) if rows else None

    def rewrite_reply(self, ai_msg_id: str, assistant_text: str) -> StoredEpisode | None:
        """Replace the assistant's words of the committed episode that ended with this reply (a reply its user
        cut off: what they heard of it), and its lexical index, in one transaction. It is left unindexed, and
        the indexer embeds it again (drop its old vector first: `by_reply` finds it; an old vector an indexer
        adds meanwhile is replaced, see `mark_indexed`). None if no committed episode ends with that reply."""
        with self.db.transaction() as conn:
            row = conn.execute(f"SELECT {COLUMNS} FROM episodes WHERE ai_msg_id = ? AND committed = 1",
                               (ai_msg_id,)).fetchone()
            if row is None:
                return None
            document = render_document(row["user_text"], assistant_text, row["created_at"])
            conn.execute("UPDATE episodes SET assistant_text = ?, document = ?, indexed = 0 WHERE seq = ?",
                         (assistant_text, document, row["seq"]))
            self.lexical.rewrite(conn, row["seq"], document)
        return stored_episode({**dict(row), "document": document})

    def remove_reply(self, ai_msg_id: str, also: Callable[[Any], None] | None = None) -> StoredEpisode | None:
        """Delete the committed episode that ended with this reply (its turn was taken back), with its lexical
        index and recall record, and run `also(conn)` in the same transaction (the server uncounts the turn
        there). Its vector is the caller's. None if no committed episode ends with that reply."""
        with self.db.transaction() as conn:
            row = conn.execute(f"SELECT {COLUMNS} FROM episodes WHERE ai_msg_id = ? AND committed = 1",
                               (ai_msg_id,)).fetchone()
            if row is None:
                return None
            self.lexical.remove(conn, seq=row["seq"])
            conn.execute("DELETE FROM turn_recalls WHERE episode_id = ?", (row["id"],))
            conn.execute("DELETE FROM episodes WHERE seq = ?", (row["seq"],))
            if also is not None:
                also(conn)
        return stored_episode(row)

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
        """Remove a session's episodes and their lexical index."""
        with self.db.transaction() as conn:
            self.lexical.remove(conn, session_id=session_id)
            turn_recalls.delete_session(conn, session_id)
            conn.execute("DELETE FROM episodes WHERE session_id = ?", (session_id,))

    def move_session(self, session_id: str, scope: str) -> None:
        """Put a session's episodes in another scope; they are re-embedded there by the indexer."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE episodes SET scope = ?, indexed = 0 WHERE session_id = ?", (scope, session_id))
            self.lexical.rescope(conn, session_id, scope)
