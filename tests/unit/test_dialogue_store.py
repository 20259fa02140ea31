"""The dialogue jobs table (server/dialogues/store.py) on both dialects: each test takes the `database` fixture
and runs on a temp SQLite file, then on a fresh database of the test PostgreSQL cluster."""

from __future__ import annotations

from server.dialogues.store import DialogueStore


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
