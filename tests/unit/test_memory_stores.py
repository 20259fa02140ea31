"""Entities, idempotency records, the semantic cache and turn records on both dialects: each test takes the
`database` fixture and runs on a temp SQLite file, then on a fresh database of the test PostgreSQL cluster."""

from __future__ import annotations

import json
import time

import pytest

from memory import turn_recalls
from memory.entities import EntityStore, NameTaken
from memory.idempotency import TTL_SECONDS, IdempotencyStore
from memory.semantic_cache import SemanticCache

VECTOR = [1.0] + [0.0] * 383


def test_an_entity_is_one_per_name_whatever_its_case(database):
    store = EntityStore(database)
    first = store.upsert("project:a", " Orion ", "service", "deploys at 04:00", session_id="s1")
    again = store.upsert("project:a", "ORION", "system", "deploys at 05:00", session_id="s2")
    other = store.upsert("project:b", "orion", "thing", "elsewhere")
    assert again.id == first.id and (again.name, again.type, again.notes) == ("Orion", "system", "deploys at 05:00")
    assert again.source_session_id == "s1"  # the session that first named it
    assert other.id != first.id
    assert [e.id for e in store.list("project:a")] == [first.id]
    assert store.get(first.id) == again and store.get("missing") is None
    assert set(store.get_many([first.id, other.id, "missing"])) == {first.id, other.id}
    assert store.get_many([]) == {}
    assert store.any_in("project:b") and not store.any_in("project:c")


def test_entities_list_in_byte_order_and_are_found_by_name_in_a_text(database):
    store = EntityStore(database)
    for name in ("apple", "Zed", "Big Bang", "a_c", "50%", "ab"):
        store.upsert("s", name, "thing", "")
    assert [e.name for e in store.list("s")] == ["50%", "Big Bang", "Zed", "a_c", "ab", "apple"]  # code points
    found = store.mentioned_in("s", "the BIG BANG happened, apples fell, 50% of them on Zed", limit=10)
    assert [e.name for e in found] == ["Big Bang", "apple", "50%", "Zed"]  # longest first; "ab" is too short
    # `_` and `%` in a name are characters, not wildcards.
    assert store.mentioned_in("s", "abc 50 percent", limit=10) == []
    assert [e.name for e in store.mentioned_in("s", "BIG BANG and Zed", limit=1)] == ["Big Bang"]


def test_renaming_onto_another_entitys_name_is_refused(database):
    store = EntityStore(database)
    orion = store.upsert("s", "Orion", "service", "")
    vega = store.upsert("s", "Vega", "service", "")
    with pytest.raises(NameTaken):
        store.update(vega.id, "orion", None, None)
    updated = store.update(vega.id, "Vega 2", None, "renamed")
    assert updated is not None and (updated.name, updated.type, updated.notes) == ("Vega 2", "service", "renamed")
    assert store.update(orion.id, "ORION", None, None) is not None  # its own name in another case is fine
    store.delete(orion.id)
    assert [e.name for e in store.list("s")] == ["Vega 2"]


def test_a_sessions_entities_follow_it_and_name_clashes_stay_behind(database):
    store = EntityStore(database)
    store.upsert("project:b", "Orion", "service", "b's own")
    mine = store.upsert("project:a", "orion", "service", "from s1", session_id="s1")
    other = store.upsert("project:a", "Vega", "star", "", session_id="s1")
    twin = store.upsert("default", "Lyra", "star", "", session_id="s1")
    store.upsert("project:a", "LYRA", "star", "", session_id="s1")  # the same name in two of s1's scopes
    store.move_session("s1", "project:b")
    assert store.get(mine.id).scope == "project:a"  # type: ignore[union-attr]
    assert store.get(other.id).scope == "project:b"  # type: ignore[union-attr]
    moved = [e for e in store.of_session("s1") if e.scope == "project:b"]
    assert sorted(e.name.lower() for e in moved) == ["lyra", "vega"]  # one Lyra moved, the other stayed
    assert twin.id in {e.id for e in store.of_session("s1")}


def test_idempotency_records_are_replaced_and_expire(database):
    store = IdempotencyStore(database)
    assert store.get("k") is None
    store.put("k", 200, '{"a": 1}', '{"x": "y"}', "hash-1")
    stored = store.get("k")
    assert stored is not None and tuple(stored) == (200, '{"a": 1}', '{"x": "y"}', "hash-1")
    assert isinstance(stored.status, int)
    store.put("k", 409, "{}", "{}", "hash-2")  # a key's record is replaced, not duplicated
    assert tuple(store.get("k") or ()) == (409, "{}", "{}", "hash-2")
    with database.transaction() as conn:  # a day-old record: never served, swept by the next write
        conn.execute("INSERT INTO idempotency (key, status, body, headers, created_at, request_hash)"
                     " VALUES (?, ?, ?, ?, ?, ?)", ("old", 200, "{}", "{}", time.time() - TTL_SECONDS - 1, "h"))
    assert store.get("old") is None
    store.put("k2", 201, "{}", "{}", "h")
    assert database.query("SELECT COUNT(*) AS n FROM idempotency")[0]["n"] == 2
    IdempotencyStore(database)  # opening again keeps the table and its rows
    assert store.get("k2") is not None


def test_cached_answers_stay_in_their_scope_owner_and_request(database):
    cache = SemanticCache(database)
    near = [0.96, 0.28] + [0.0] * 382  # cosine 0.96 with VECTOR
    first = cache.store("project:a", "k", "req", "s1", "knowledge", "What is a mutex?", VECTOR, "A lock.", 12, 600)
    cache.store("project:a", "k", "req", "s2", "knowledge", "What is a semaphore?", near, "A counter.", 5, 600)
    hit = cache.lookup("project:a", "k", "req", "What is a mutex?", VECTOR, 0.9)
    assert hit is not None and (hit.id, hit.answer, hit.tokens) == (first, "A lock.", 12)
    assert hit.similarity == pytest.approx(1.0)  # the float32 vector comes back byte for byte
    assert cache.lookup("project:b", "k", "req", "What is a mutex?", VECTOR, 0.9) is None
    assert cache.lookup("project:a", None, "req", "What is a mutex?", VECTOR, 0.9) is None
    assert cache.lookup("project:a", "k", "other", "What is a mutex?", VECTOR, 0.9) is None
    assert cache.count() == 2 and cache.count("s1") == 1
    assert cache.delete_session("s1") == 1 and cache.delete_session("s1") == 0
    assert cache.delete_scope("project:a") == 1 and cache.count() == 0


def test_equally_close_cached_answers_give_the_newest(database):
    cache = SemanticCache(database)
    cache.store("s", "", "req", "s1", "knowledge", "What is a mutex?", VECTOR, "old answer", 1, 600, now=1000)
    cache.store("s", "", "req", "s1", "knowledge", "What is a mutex?", VECTOR, "new answer", 1, 600, now=1001)
    hit = cache.lookup("s", None, "req", "What is a mutex?", VECTOR, 0.9, now=1002)
    assert hit is not None and hit.answer == "new answer"


def test_a_turn_record_is_json_text_written_once_per_episode(database):
    turn_recalls.ensure_schema(database)
    turn_recalls.ensure_schema(database)  # idempotent
    record = {"episodes": [{"text": "Café ☕ at 08:00", "score": 0.5}], "degraded": False}
    with database.transaction() as conn:
        turn_recalls.write(conn, "e1", {"episodes": []})
        turn_recalls.write(conn, "e1", record)  # a repaired turn's record replaces the first
    rows = database.query("SELECT episode_id, record FROM turn_recalls")
    assert [row["episode_id"] for row in rows] == ["e1"]
    assert isinstance(rows[0]["record"], str) and json.loads(rows[0]["record"]) == record
    assert "Café ☕" in rows[0]["record"]  # stored as written, not \\u-escaped
