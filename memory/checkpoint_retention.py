"""Checkpoint retention: keep the newest checkpoints of each thread, delete the older ones and their writes.

Every turn adds a LangGraph checkpoint; nothing in the service reads an older one (a failed turn is undone by
writing a new checkpoint on top of the latest: server/turns/runner.py), so older ones are only history for time
travel. `CheckpointRetention` is what a saver's storage must offer for the policy; `SqliteCheckpointRetention`
implements it on the file `AsyncSqliteSaver` writes (a Postgres profile would implement the same four calls).

Which rows go: a thread's newest `keep` checkpoints of the root namespace are kept; every row of the thread,
in any namespace, older than the oldest of them goes, with its writes. Checkpoint ids are uuid6, ordered by
time (the saver itself finds the latest by `ORDER BY checkpoint_id DESC`), so a subgraph's checkpoints made
during a kept step are newer than that step's parent and stay. A thread is pruned in one transaction (the
service prunes after each turn, so that is a checkpoint or two): a process killed mid-way leaves each thread
either pruned or as it was.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: Pages one incremental vacuum step returns (1 MiB at SQLite's default page size).
RECLAIM_CHUNK_PAGES = 256
#: The WAL is cut back to this size once checkpointed (SQLite otherwise keeps its largest size on disk).
WAL_SIZE_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class CheckpointStats:
    """What the checkpoint store holds and how much disk it takes."""

    checkpoints: int
    writes: int
    bytes_on_disk: int
    """The database file and its WAL."""
    free_bytes: int
    """Pages inside the file that hold nothing (reused by later writes, or returned by `reclaim`)."""


class CheckpointRetention(Protocol):
    """The storage side of the retention policy, one implementation per checkpoint saver."""

    def prune(self, thread_id: str, keep: int) -> int:
        """Delete what is older than the thread's `keep`-th newest root checkpoint; how many checkpoints went."""
        ...

    def thread_ids(self) -> list[str]:
        """Every thread that has checkpoints."""
        ...

    def stats(self) -> CheckpointStats:
        """Rows and bytes."""
        ...

    def reclaim(self) -> int:
        """Give freed space back to the operating system where the store can; the bytes returned."""
        ...

    def close(self) -> None:
        """Release the store's connection."""
        ...


class SqliteCheckpointRetention:
    """Retention on a `langgraph-checkpoint-sqlite` file, through a connection of its own (blocking calls:
    run them off the event loop). Calls are serialised: one connection, one transaction at a time."""

    def __init__(self, path: Path, reserve_bytes: int = 1024 * 1024) -> None:
        self.path = Path(path)
        # Freed pages up to this much stay in the file for the next checkpoints to reuse; only the excess is
        # returned, so the file neither grows again right after each reclaim nor keeps a deleted session's space.
        self.reserve_bytes = reserve_bytes
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")

    def prune(self, thread_id: str, keep: int) -> int:
        """Delete what is older than the thread's `keep`-th newest root checkpoint, in one transaction."""
        if keep < 1:
            raise ValueError("keep must be at least 1: the newest checkpoint is the session")
        with self._lock:
            cur = self._conn.cursor()
            # IMMEDIATE: take the write lock first, so the cutoff read and the deletes see one state.
            cur.execute("BEGIN IMMEDIATE")
            try:
                row = cur.execute("SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
                                  "ORDER BY checkpoint_id DESC LIMIT 1 OFFSET ?", (thread_id, keep - 1)).fetchone()
                if row is None:
                    cur.execute("COMMIT")
                    return 0
                cur.execute("DELETE FROM writes WHERE thread_id = ? AND checkpoint_id < ?", (thread_id, row[0]))
                deleted = cur.execute("DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id < ?",
                                      (thread_id, row[0])).rowcount
                cur.execute("COMMIT")
                return deleted
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def thread_ids(self) -> list[str]:
        """Every thread with a checkpoint (the primary key's order: no sort)."""
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT DISTINCT thread_id FROM checkpoints")]

    def stats(self) -> CheckpointStats:
        """Row counts, the file and its WAL on disk, and the free pages inside the file."""
        with self._lock:
            checkpoints = self._conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
            writes = self._conn.execute("SELECT COUNT(*) FROM writes").fetchone()[0]
            free = self._pragma("freelist_count") * self._pragma("page_size")
        return CheckpointStats(checkpoints, writes, bytes_on_disk(self.path), free)

    def auto_vacuum(self) -> str:
        """`none`, `full` or `incremental`: whether `reclaim` can return space without a VACUUM."""
        with self._lock:
            return {0: "none", 1: "full", 2: "incremental"}.get(self._pragma("auto_vacuum"), "none")

    def reclaim(self) -> int:
        """Return the free pages beyond the reserve to the OS (`incremental_vacuum`; the file shrinks when the
        WAL is checkpointed: a passive checkpoint here, which never waits for, nor blocks, the service's own
        connection). A no-op on a file made without `auto_vacuum=INCREMENTAL`: there SQLite reuses the free
        pages, and `vacuum()` converts the file."""
        with self._lock:
            if self._pragma("auto_vacuum") != 2:
                return 0
            page = self._pragma("page_size")
            excess = self._pragma("freelist_count") - self.reserve_bytes // page
            if excess <= 0:
                return 0
            before = bytes_on_disk(self.path)
            # In chunks, each its own short transaction: the service's writes wait for one chunk at most.
            # executescript steps each statement to its end (execute() would free a single page).
            for start in range(0, excess, RECLAIM_CHUNK_PAGES):
                self._conn.executescript(f"PRAGMA incremental_vacuum({min(RECLAIM_CHUNK_PAGES, excess - start)});")
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            return max(0, before - bytes_on_disk(self.path))

    def vacuum(self) -> None:
        """Rewrite the file compactly and switch it to `auto_vacuum=INCREMENTAL` (needs free disk space about
        the size of the file; no other connection may write meanwhile)."""
        with self._lock:
            self._conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def _pragma(self, name: str) -> int:
        return int(self._conn.execute(f"PRAGMA {name}").fetchone()[0])


def bytes_on_disk(path: Path) -> int:
    """Size of a SQLite file with its WAL and shared-memory files."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())
