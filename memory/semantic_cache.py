"""The semantic cache: answers to earlier questions, found again by the question's MiniLM vector.

Rows live in the memory database (memory.db, or Postgres with DATABASE_URL); vectors are float32 blobs
compared in numpy. An entry is only ever found for the same scope (project), the same API key owner and the same
request key (model, system prompt and tools, hashed): a cached answer never crosses a project or a key. Each row
names the session that contributed it, so deleting a session or a project deletes its entries.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from memory.cache_guard import same_particulars
from memory.db import Database, Dialect

SCHEMA: dict[Dialect, str] = {
    "sqlite": """
CREATE TABLE IF NOT EXISTS semantic_cache (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    owner TEXT NOT NULL,
    request_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    query_class TEXT NOT NULL,
    query TEXT NOT NULL,
    vector BLOB NOT NULL,
    answer TEXT NOT NULL,
    tokens INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS semantic_cache_lookup ON semantic_cache (scope, owner, request_key, expires_at);
CREATE INDEX IF NOT EXISTS semantic_cache_session ON semantic_cache (session_id);
""",
    "postgres": """
CREATE TABLE IF NOT EXISTS semantic_cache (
    id TEXT COLLATE "C" PRIMARY KEY,
    scope TEXT COLLATE "C" NOT NULL,
    owner TEXT COLLATE "C" NOT NULL,
    request_key TEXT COLLATE "C" NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL,
    query_class TEXT NOT NULL,
    query TEXT NOT NULL,
    vector BYTEA NOT NULL,
    answer TEXT NOT NULL,
    tokens INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS semantic_cache_lookup ON semantic_cache (scope, owner, request_key, expires_at);
CREATE INDEX IF NOT EXISTS semantic_cache_session ON semantic_cache (session_id);
CREATE INDEX IF NOT EXISTS semantic_cache_expiry ON semantic_cache (expires_at);
""",
}
SWEEP: dict[Dialect, str] = {
    "sqlite": "DELETE FROM semantic_cache WHERE expires_at <= ?",
    # Workers writing at once skip the expired rows another one is deleting, rather than queue on them.
    "postgres": "DELETE FROM semantic_cache WHERE id IN (SELECT id FROM semantic_cache WHERE expires_at <= ?"
                " FOR UPDATE SKIP LOCKED)",
}


def request_key(model: str | None, system: str | None, tools: list[dict[str, Any]] | None) -> str:
    """One hash of what else shapes an answer besides the question: the model, the system prompt, the tools."""
    blob = json.dumps([model or "", system or "", tools or []], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class CacheHit:
    """A cached answer and how close its question was."""

    id: str
    query: str
    answer: str
    tokens: int
    similarity: float


class SemanticCache:
    """Blocking: call through `asyncio.to_thread`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript(SCHEMA[db.dialect])

    def lookup(self, scope: str, owner: str | None, key: str, query: str, vector: list[float] | np.ndarray,
               threshold: float, now: float | None = None) -> CacheHit | None:
        """The nearest live entry of this scope, owner and request key whose similarity reaches `threshold` and
        whose question names the same particulars (memory/cache_guard.py)."""
        rows = self.db.query(
            "SELECT id, query, vector, answer, tokens FROM semantic_cache "
            "WHERE scope = ? AND owner = ? AND request_key = ? AND expires_at > ? ORDER BY created_at DESC, id",
            (scope, owner or "", key, time.time() if now is None else now))
        if not rows:
            return None
        matrix = np.frombuffer(b"".join(r["vector"] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        sims = matrix @ np.asarray(vector, dtype=np.float32)
        for i in np.argsort(-sims, kind="stable"):  # equally close: the newest entry first, on both dialects
            if float(sims[i]) < threshold:
                break
            row = rows[int(i)]
            if same_particulars(row["query"], query):
                return CacheHit(row["id"], row["query"], row["answer"], int(row["tokens"]), float(sims[i]))
        return None

    def store(self, scope: str, owner: str | None, key: str, session_id: str, query_class: str, query: str,
              vector: list[float] | np.ndarray, answer: str, tokens: int, ttl_seconds: float,
              now: float | None = None) -> str:
        """Add an entry; returns its id."""
        now = time.time() if now is None else now
        entry_id = uuid.uuid4().hex
        blob = np.asarray(vector, dtype=np.float32).tobytes()
        with self.db.transaction() as conn:
            conn.execute(SWEEP[self.db.dialect], (now,))  # expired rows go as we write
            conn.execute("INSERT INTO semantic_cache (id, scope, owner, request_key, session_id, query_class, query,"
                         " vector, answer, tokens, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (entry_id, scope, owner or "", key, session_id, query_class, query, blob, answer,
                          tokens, now, now + ttl_seconds))
        return entry_id

    def delete_session(self, session_id: str) -> int:
        """Remove what a session contributed; returns the number of entries removed."""
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM semantic_cache WHERE session_id = ?", (session_id,)).rowcount

    def delete_scope(self, scope: str) -> int:
        """Remove every entry of a scope (a deleted project)."""
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM semantic_cache WHERE scope = ?", (scope,)).rowcount

    def count(self, session_id: str | None = None) -> int:
        """Entries held (live or not yet swept), all or one session's."""
        if session_id is None:
            return int(self.db.query("SELECT COUNT(*) FROM semantic_cache")[0][0])
        return int(self.db.query("SELECT COUNT(*) FROM semantic_cache WHERE session_id = ?", (session_id,))[0][0])
