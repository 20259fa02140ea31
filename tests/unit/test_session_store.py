"""Sessions and projects (memory/sessions.py) on both dialects: each test takes the `database` fixture and runs on
a temp SQLite file, then on a fresh database of the test PostgreSQL cluster."""

from __future__ import annotations

import time

from memory.sessions import SessionStore
from server.deps import MAX_OFFSET


def test_a_session_is_created_once_on_first_use(database):
    store = SessionStore(database)
    first = store.ensure("s1", project_id="p1", owner="k1")
    again = store.ensure("s1", project_id="p2", owner="k2")  # a later call never moves or re-owns it
    assert (first["id"], first["project_id"], first["owner"], first["turn_count"]) == ("s1", "p1", "k1", 0)
    assert again == first
    assert store.create("s1", "taken", None) is None
    created = store.create("s2", "Named", "p1", owner="k1")
    assert created is not None and (created["name"], created["project_id"]) == ("Named", "p1")
    assert isinstance(created["created_at"], float) and created["created_at"] == created["updated_at"]


def test_turns_are_counted_and_create_the_session(database):
    store = SessionStore(database)
    store.record_turn("fresh", now=1700000000.123456)
    with database.transaction() as conn:
        SessionStore.count_turns(conn, "fresh", 2, now=1700000001.654321)
    row = store.get("fresh")
    assert row is not None and row["turn_count"] == 3 and isinstance(row["turn_count"], int)
    # Epoch seconds keep their microseconds (DOUBLE PRECISION on Postgres, REAL on SQLite).
    assert (row["created_at"], row["updated_at"]) == (1700000000.123456, 1700000001.654321)
    assert store.get("missing") is None


def test_the_list_pages_newest_first_and_breaks_ties_by_id_in_byte_order(database):
    store = SessionStore(database)
    for session_id in ("b", "a", "B", "older"):
        store.ensure(session_id, project_id="p" if session_id != "older" else None, owner="k")
    with database.transaction() as conn:
        for session_id in ("b", "a", "B"):
            SessionStore.count_turns(conn, session_id, 1, now=2000.0)
        SessionStore.count_turns(conn, "older", 1, now=1000.0)
    rows, total = store.list()
    assert [r["id"] for r in rows] == ["B", "a", "b", "older"] and total == 4  # "B" < "a": code points
    page, total = store.list(limit=2, offset=1)
    assert [r["id"] for r in page] == ["a", "b"] and total == 4
    assert store.list(limit=2, offset=10) == ([], 4)
    assert store.list(limit=200, offset=MAX_OFFSET) == ([], 4)  # the largest offset the API lets through
    assert [r["id"] for r in store.list(project_id="p")[0]] == ["B", "a", "b"]
    assert store.list(project_id="p", owner="other") == ([], 0)
    assert store.count_active(60, now=2030.0) == 3


def test_renaming_moving_and_naming_once(database):
    store = SessionStore(database)
    store.ensure("s", project_id="p1")
    before = store.get("s")
    assert before is not None
    time.sleep(0.01)
    moved = store.update("s", project_id=None)
    assert moved is not None and moved["project_id"] is None and moved["updated_at"] > before["updated_at"]
    assert store.set_name_if_unnamed("s", "Auto name") is True
    assert store.set_name_if_unnamed("s", "Another") is False  # a name is never overwritten
    assert store.set_name_if_unnamed("nobody", "x") is False
    renamed = store.update("s", name="Mine")
    assert renamed is not None and (renamed["name"], renamed["project_id"]) == ("Mine", None)
    store.delete_session_row("s")
    assert store.get("s") is None


def test_projects_count_their_sessions_and_list_newest_first(database):
    store = SessionStore(database)
    assert store.create_project("p1", "One", "first", owner="k1") is not None
    assert store.create_project("p1", "Again", None) is None
    store.create_project("p2", "Two", None, owner="k2")
    store.ensure("a", project_id="p1")
    store.ensure("b", project_id="p1")
    project = store.get_project("p1")
    assert project is not None
    assert (project["name"], project["description"], project["owner"], project["session_count"]) == (
        "One", "first", "k1", 2)
    assert [p["id"] for p in store.list_projects()] == ["p2", "p1"]
    assert [p["id"] for p in store.list_projects(owner="k1")] == ["p1"]
    updated = store.update_project("p1", "Renamed", None)
    assert updated is not None and (updated["name"], updated["description"]) == ("Renamed", None)
    store.delete_project_row("p1")
    assert store.get_project("p1") is None and store.get_project("p2") is not None


def test_opening_the_store_again_keeps_the_rows(database):
    SessionStore(database).ensure("kept", owner="k")
    reopened = SessionStore(database)  # the schema is applied again: idempotent on both dialects
    row = reopened.get("kept")
    assert row is not None and row["owner"] == "k"
