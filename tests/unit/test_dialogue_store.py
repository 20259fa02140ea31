"""The dialogue jobs table (server/dialogues/store.py) on both dialects: each test taking the `database` fixture
runs on a temp SQLite file, then on a fresh database of the test PostgreSQL cluster; and the claim that keeps
a job on one worker when several share the Postgres table."""

from __future__ import annotations

import time

from memory.db import SqliteDatabase
from memory.pg import PgDatabase
from server.deps import MAX_OFFSET
from server.dialogues.store import CLAIM_LOCK_CLASS, DialogueStore


def request(topic: str) -> dict:
    return {"topic": topic, "participants": [{"name": "A"}, {"name": "B"}], "min_turns": 2, "max_turns": 4}


def test_a_batch_is_queued_whole_and_read_back(database):
    store = DialogueStore(database)
    store.add([("d1", "Rust vs Go", request("Rust vs Go")), ("d2", "Tabs", request("Tabs"))], "batch-1", owner="k")
    row = store.get("d1")
    assert row is not None
    assert (row.batch_id, row.owner, row.topic, row.status, row.turns, row.metrics) == (
        "batch-1", "k", "Rust vs Go", "queued", None, None)
    assert row.request == request("Rust vs Go") and isinstance(row.created_at, float)
    assert store.get("missing") is None
    assert store.unfinished() == ["d1", "d2"]
    assert store.counts() == {"queued": 2} and store.counts(owner="other") == {}


def test_a_finished_job_stays_finished(database):
    store = DialogueStore(database)
    store.add([("d1", "t", request("t")), ("d2", "t", request("t"))], None)
    assert store.set_status("d1", "running") is True
    turns = [{"speaker": "A", "text": "Bonjour ☕", "tokens": 3}]
    assert store.finish("d1", "done", "max_turns", None, turns, {"turns": 1}) is True
    assert store.finish("d1", "failed", None, "late", [], {}) is False  # rowcount 0: already finished
    assert store.set_status("d1", "cancelled") is False
    assert store.set_status("d2", "cancelled") is True
    row = store.get("d1")
    assert row is not None and (row.status, row.ending_reason, row.turns, row.metrics) == (
        "done", "max_turns", turns, {"turns": 1})
    assert store.unfinished() == []
    assert store.counts() == {"done": 1, "cancelled": 1}


def test_pages_follow_creation_order_with_a_cursor_and_filters(database):
    store = DialogueStore(database)
    topics = ["Rust", "rust 100% safe?", "Go", "TRUST issues", "under_score"]
    for i, topic in enumerate(topics):
        store.add([(f"d{i}", topic, request(topic))], "b" if i % 2 else None, owner="k" if i < 4 else "j")
    first = store.page(limit=2)
    assert [row.id for _, row in first] == ["d0", "d1"]
    second = store.page(after=first[-1][0], limit=2)
    assert [row.id for _, row in second] == ["d2", "d3"]
    assert [row.id for _, row in store.page(after=second[-1][0])] == ["d4"]
    assert store.page(after=MAX_OFFSET) == []  # the largest cursor the API lets through
    # Topic: a case-insensitive substring; `%` and `_` are characters, not wildcards.
    assert [row.id for _, row in store.page(topic="RUST")] == ["d0", "d1", "d3"]
    assert [row.id for _, row in store.page(topic="0% s")] == ["d1"]
    assert [row.id for _, row in store.page(topic="R_ST")] == []  # a wildcard would match "Rust"
    assert [row.id for _, row in store.page(topic="r_sc")] == ["d4"]
    assert [row.id for _, row in store.page(batch_id="b")] == ["d1", "d3"]
    assert [row.id for _, row in store.page(owner="j")] == ["d4"]
    assert [row.id for _, row in store.page(status="queued", owner="k", topic="go")] == ["d2"]
    DialogueStore(database)  # opening again keeps the table and its rows
    assert len(store.page()) == 5


def test_a_job_runs_on_one_worker_at_a_time_and_a_dead_workers_claim_ends(postgres):
    url = postgres.database()
    db_a, db_b = PgDatabase(url, max_size=2), PgDatabase(url, max_size=2)  # two workers, one database
    try:
        worker_a, worker_b = DialogueStore(db_a), DialogueStore(db_b)
        worker_a.add([("d1", "t", request("t")), ("d2", "t", request("t"))], None)
        release = worker_a.claim("d1")
        assert release is not None
        assert worker_b.claim("d1") is None  # worker b's start-up leaves it to a
        other = worker_b.claim("d2")
        assert other is not None
        other()
        release()
        held_by_b = worker_b.claim("d1")
        assert held_by_b is not None and worker_a.claim("d1") is None
        # Worker b dies holding it: its connection ends, and the claim with it.
        killed = db_a.query("SELECT pg_terminate_backend(pid) AS ok FROM pg_locks WHERE locktype = 'advisory'"
                            " AND classid = ?", (CLAIM_LOCK_CLASS,))
        assert [row["ok"] for row in killed] == [True]
        deadline = time.monotonic() + 10  # the killed backend exits (and unlocks) a moment after the signal
        while (taken_over := worker_a.claim("d1")) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert taken_over is not None
        taken_over()
        held_by_b()  # giving back a claim whose connection is gone is harmless
    finally:
        db_a.close()
        db_b.close()


def test_on_sqlite_the_one_process_may_always_run_a_job(tmp_path):
    store = DialogueStore(SqliteDatabase(tmp_path / "dialogues.db"))
    store.add([("d1", "t", request("t"))], None)
    first, second = store.claim("d1"), store.claim("d1")
    assert first is not None and second is not None  # the DATA_DIR lock keeps other processes out
    first()
    second()
    store.db.close()
