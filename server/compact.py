"""`orchestrator compact`: apply the retention policy once to an existing checkpoint store, then shrink it.

For a store written before CHECKPOINTS_KEPT existed (or with it at 0): every thread is pruned to its newest
checkpoints, one transaction per thread, then the file is rewritten by VACUUM with `auto_vacuum=INCREMENTAL`,
so the running service can give pruned space back from then on. The service must be stopped: compact holds
DATA_DIR's lock like the service does, and is refused while it runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from tqdm import tqdm

from config.settings import Settings
from memory.checkpoint_retention import SqliteCheckpointRetention, bytes_on_disk
from memory.datadir_lock import DirectoryLock


@dataclass(frozen=True)
class CompactReport:
    """What one compaction did."""

    threads: int
    checkpoints_deleted: int
    bytes_before: int
    bytes_after: int

    @property
    def bytes_freed(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)


def compact(settings: Settings, keep: int, vacuum: bool = True, out: TextIO = sys.stderr) -> CompactReport:
    """Prune every thread of `settings.checkpoints_path` to its newest `keep` checkpoints (with a progress
    bar on `out`), then VACUUM unless told not to. Raises RuntimeError if the service holds DATA_DIR. With
    DATABASE_URL, the Postgres checkpoints instead (`compact_postgres`)."""
    if settings.database_url:
        return compact_postgres(settings.database_url, keep, out)
    path = settings.checkpoints_path
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint store at {path}: check DATA_DIR")
    lock = DirectoryLock(settings.data_dir, "DATA_DIR")
    lock.acquire()
    try:
        before = bytes_on_disk(path)
        store = SqliteCheckpointRetention(path)
        try:
            threads = store.thread_ids()
            print(f"pruning {len(threads)} sessions of {path} to their newest {keep} checkpoints", file=out,
                  flush=True)
            deleted = 0
            for thread_id in tqdm(threads, unit="session", file=out, mininterval=0.1):
                deleted += store.prune(thread_id, keep)
            if vacuum:
                print("rewriting the file (VACUUM, auto_vacuum=INCREMENTAL)", file=out, flush=True)
                store.vacuum()
        finally:
            store.close()
        return CompactReport(len(threads), deleted, before, bytes_on_disk(path))
    finally:
        lock.release()


def compact_postgres(url: str, keep: int, out: TextIO = sys.stderr) -> CompactReport:
    """Prune every thread of the Postgres checkpoints to its newest `keep`. The workers may keep running: a
    thread is pruned in one transaction, and channel values a turn in progress may still name are kept
    (memory/pg_checkpoint_retention.py). The sizes are the tables' on disk; Postgres reuses what was freed
    (autovacuum) and returns it to the OS only on `VACUUM FULL`, left to the operator (it locks the tables)."""
    from memory.pg_checkpoint_retention import PgCheckpointRetention

    store = PgCheckpointRetention(url)
    try:
        before = store.stats().bytes_on_disk
        threads = store.thread_ids()
        print(f"pruning {len(threads)} sessions of the Postgres checkpoints to their newest {keep}", file=out,
              flush=True)
        deleted = sum(store.prune(thread_id, keep) for thread_id in tqdm(threads, unit="session", file=out,
                                                                          mininterval=0.1))
        return CompactReport(len(threads), deleted, before, store.stats().bytes_on_disk)
    finally:
        store.close()
