"""What a turn costs the shared engines: Postgres statements, transactions, rows and connections, Chroma
calls, and the CPU time of both servers, read around a window of turns.

Statements come from `pg_stat_statements` (updated when each statement ends); transactions and rows from
`pg_stat_database`, which backends flush when idle (at most every 10 s in PostgreSQL 15+), hence
`FLUSH_WAIT_S` before each read. Every read goes through the `postgres` database so the bench's own queries
never count against the service's database. CPU time is utime+stime of each server's process tree (/proc).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from bench.common import process_tree

FLUSH_WAIT_S = 11.0  # > PGSTAT_IDLE_INTERVAL (10 s): idle backends have flushed their counters
_DB_COUNTERS = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted", "tup_updated",
                "tup_deleted", "blks_read", "blks_hit")


def enable_statement_stats(cluster: Any) -> bool:
    """Load pg_stat_statements into a running `tests.engines.PostgresCluster` (a restart); False if missing."""
    if not (cluster.bindir.parent / "lib" / "pg_stat_statements.so").exists():
        return False
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    # `restart` reuses the start's options (postmaster.opts); `-l` keeps the server off our stdout pipe.
    cluster._run(cluster.bindir / "pg_ctl", "-D", cluster.datadir, "-l", cluster.log, "-w", "restart")
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return True


def cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid`'s tree: utime+stime of each process alive now, plus the root's cutime+cstime, which
    holds the children it has reaped (a Postgres backend that exited keeps counting)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        if p == pid:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime (16 and 17)
    return total / tick


def postmaster_pid(cluster: Any) -> int:
    """The cluster's postmaster (first line of postmaster.pid)."""
    return int((cluster.datadir / "postmaster.pid").read_text().split()[0])


class PgWindow:
    """Counters of one database, read before and after a window: `start()`, run turns, `stop(turns)`."""

    def __init__(self, admin_url: str, database: str, statements: bool, pg_pid: int, chroma_pid: int | None,
                 flush_wait_s: float = FLUSH_WAIT_S) -> None:
        self.admin_url, self.database, self.statements = admin_url, database, statements
        self.pg_pid, self.chroma_pid, self.flush_wait_s = pg_pid, chroma_pid, flush_wait_s
        self._before: dict[str, float] = {}
        self._t_before = 0.0
        self._idle_rate: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(f"SELECT {', '.join(_DB_COUNTERS)} FROM pg_stat_database WHERE datname = %s",
                               (self.database,)).fetchone()
            out = dict(zip(_DB_COUNTERS, (float(v or 0) for v in row or ()), strict=False))
            if self.statements:  # by leading keyword: SELECT vs writes says what a read replica could take
                kinds = conn.execute(
                    "SELECT lower(split_part(ltrim(s.query), ' ', 1)), sum(s.calls) FROM pg_stat_statements s"
                    " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s GROUP BY 1",
                    (self.database,)).fetchall()
                out["statements"] = float(sum(n for _, n in kinds))
                out.update({f"statements_{kind or 'other'}": float(n) for kind, n in kinds})
        out["postgres_cpu_s"] = cpu_seconds(self.pg_pid)
        if self.chroma_pid is not None:
            out["chroma_cpu_s"] = cpu_seconds(self.chroma_pid)
        return out

    def _cpu(self) -> dict[str, float]:
        pids = {"postgres": self.pg_pid, "chroma": self.chroma_pid}
        return {name: cpu_seconds(pid) for name, pid in pids.items() if pid is not None}

    def start(self) -> None:
        """Wait for counters to settle; the CPU the servers burn meanwhile, idle, is their baseline."""
        cpu0, t0 = self._cpu(), time.monotonic()
        time.sleep(self.flush_wait_s)
        self._before = self._read()
        self._t_before = time.monotonic()
        idle_s = max(self._t_before - t0, 1e-6)
        self._idle_rate = {name: (self._before[f"{name}_cpu_s"] - cpu0[name]) / idle_s for name in cpu0}

    def stop(self, turns: int) -> dict[str, float]:
        """Per-turn deltas over the window (background work after each reply included: it waits it out).
        `*_cpu_s_net` removes the idle baseline (checkpointer, autovacuum, ...) over the window's length."""
        time.sleep(self.flush_wait_s)
        after = self._read()
        window_s = time.monotonic() - self._t_before
        n = max(turns, 1)
        out = {k: round((after[k] - self._before.get(k, 0.0)) / n, 4) for k in after}
        for name, rate in self._idle_rate.items():
            out[f"{name}_cpu_s_net"] = round(max(out[f"{name}_cpu_s"] - rate * window_s / n, 0.0), 5)
        return out


def connections(admin_url: str, database: str) -> int:
    """Backends connected to `database` now."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()
    return int(row[0]) if row else 0


class ConnectionSampler:
    """Polls the backends connected to a database in a thread; `peak` is the most seen (`with` block)."""

    def __init__(self, admin_url: str, database: str, interval_s: float = 0.2) -> None:
        self.admin_url, self.database, self.interval_s = admin_url, database, interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-connections", daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                   (self.database,)).fetchone()
                self.peak = max(self.peak, int(row[0]) if row else 0)
                self._stop.wait(self.interval_s)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def chroma_per_turn(before: Counter[str], after: Counter[str], turns: int) -> dict[str, Any]:
    """Chroma calls per turn over a window, in all and by operation (the route's last segment)."""
    delta = after - before
    by_op: Counter[str] = Counter()
    for route, n in delta.items():
        by_op[route.rsplit("/", 1)[-1] or route] += n
    return {"calls_per_turn": round(sum(delta.values()) / max(turns, 1), 3),
            "by_operation_per_turn": {op: round(n / max(turns, 1), 3) for op, n in by_op.most_common()}}
