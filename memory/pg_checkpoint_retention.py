"""Checkpoint retention on Postgres (the scale-out profile): the `CheckpointRetention` protocol of
memory/checkpoint_retention.py on the tables langgraph-checkpoint-postgres writes.

Its tables: `checkpoints` (one row per checkpoint, its small values inline), `checkpoint_writes` (pending writes
by checkpoint) and `checkpoint_blobs`, the larger channel values by (thread, namespace, channel, version),
shared by every checkpoint whose `channel_versions` names that version. Pruning a thread keeps its newest `keep`
root checkpoints as on SQLite, deletes older rows of every namespace with their writes, then the blobs no kept
checkpoint names. A save writes its blobs before its checkpoint row, so an unnamed blob may belong to a save in
progress: while no turn of the thread runs on any worker (its session's advisory lock is free, see
server/turns/pg_locks.py) every unnamed blob goes; while one runs, only those older than what the newest
checkpoint of their namespace names (versions are zero-padded and grow with each write: the saver's
`get_next_version`), and a subgraph call's namespace whose checkpoints all went waits for a later pass.

Space: Postgres reuses the rows' space once autovacuum has passed, and returns it to the OS only on `VACUUM
FULL` (which locks the tables); `reclaim` therefore returns 0 and leaves it to autovacuum."""

from __future__ import annotations

import threading

import psycopg

from memory.checkpoint_retention import CheckpointStats

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")

#: The advisory locks of sessions (two-int keys: this, `hashtext(session id)`), held by a worker for a turn.
SESSION_LOCKS = 1

CUTOFF_SQL = ("SELECT checkpoint_id FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = '' "
              "ORDER BY checkpoint_id DESC LIMIT 1 OFFSET %s")
# Blobs no remaining checkpoint of their namespace names.
UNNAMED_BLOBS_SQL = """
DELETE FROM checkpoint_blobs b
WHERE b.thread_id = %(thread)s
  AND NOT EXISTS (SELECT 1 FROM checkpoints c
                  WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
                    AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)
"""
# ... and older than the version the newest checkpoint of their namespace names (a save in progress writes newer).
OLDER_CONDITION = """
  AND b.version < (SELECT c.checkpoint -> 'channel_versions' ->> b.channel FROM checkpoints c
                   WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
                   ORDER BY c.checkpoint_id DESC LIMIT 1)
"""


class PgCheckpointRetention:
    """Retention on the Postgres checkpoint tables through a connection of its own (blocking calls: run them off
    the event loop; one call at a time)."""

    reserve_bytes = 0

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._conn = psycopg.connect(url, autocommit=True)

    def prune(self, thread_id: str, keep: int) -> int:
        """Delete what is older than the thread's `keep`-th newest root checkpoint, in one transaction."""
        if keep < 1:
            raise ValueError("keep must be at least 1: the newest checkpoint is the session")
        with self._lock, self._conn.transaction():
            row = self._conn.execute(CUTOFF_SQL, (thread_id, keep - 1)).fetchone()
            if row is None:
                return 0
            cutoff = row[0]
            self._conn.execute("DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id < %s",
                               (thread_id, cutoff))
            deleted = self._conn.execute("DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_id < %s",
                                         (thread_id, cutoff)).rowcount
            idle = self._conn.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))",
                                      (SESSION_LOCKS, thread_id)).fetchone()
            self._conn.execute(UNNAMED_BLOBS_SQL if idle and idle[0] else UNNAMED_BLOBS_SQL + OLDER_CONDITION,
                               {"thread": thread_id})
            return deleted

    def thread_ids(self) -> list[str]:
        """Every thread with a checkpoint."""
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT DISTINCT thread_id FROM checkpoints")]

    def stats(self) -> CheckpointStats:
        """Row counts and the tables' size on disk (with their indexes and TOAST); free space inside them is
        not measured (Postgres' free space map is not exposed without an extension): 0."""
        with self._lock:
            checkpoints = self._conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()
            writes = self._conn.execute("SELECT COUNT(*) FROM checkpoint_writes").fetchone()
            size = self._conn.execute("SELECT " + " + ".join(f"pg_total_relation_size('{t}')" for t in TABLES)
                                      ).fetchone()
        assert checkpoints and writes and size
        return CheckpointStats(int(checkpoints[0]), int(writes[0]), int(size[0]), 0)

    def blob_count(self, thread_id: str) -> int:
        """The thread's rows in checkpoint_blobs (for tests and `orchestrator compact`'s report)."""
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM checkpoint_blobs WHERE thread_id = %s",
                                     (thread_id,)).fetchone()
        return int(row[0]) if row else 0

    def reclaim(self) -> int:
        """Nothing to do here: autovacuum makes deleted rows' space reusable (see the module's docstring)."""
        return 0

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
