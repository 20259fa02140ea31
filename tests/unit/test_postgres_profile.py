"""The Postgres profile's wiring: DATABASE_URL (a fresh database of the test cluster) opens the memory database
on Postgres, its absence the SQLite file in DATA_DIR; a Postgres that is not there stops the start clearly; and
end to end, in process, `build_deps` puts every store on Postgres and the sessions, projects and entities routes
work on it through the real app (lifespan running, a fake chat model), nothing landing in DATA_DIR's files."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from config.settings import Settings
from graph.wiring import build_deps, open_database, redacted
from inference.processes import free_port
from memory.db import SqliteDatabase
from memory.pg import PgDatabase
from server.app import create_app
from tests.fakes import FakeChatModel, contract


@pytest.fixture
def pg_settings(settings: Settings, postgres) -> Settings:
    return settings.model_copy(update={"database_url": postgres.database(), "database_pool_size": 4})


def test_database_url_chooses_postgres_and_its_absence_sqlite(settings, pg_settings):
    db = open_database(pg_settings)
    try:
        assert isinstance(db, PgDatabase) and db.dialect == "postgres" and db.pool.max_size == 4
    finally:
        db.close()
    db = open_database(settings)
    try:
        assert isinstance(db, SqliteDatabase) and db.path == str(settings.memory_path)
    finally:
        db.close()


def test_a_postgres_that_is_not_there_stops_the_start_naming_it_without_its_password(settings):
    url = f"postgresql://app:s3cret@127.0.0.1:{free_port()}/memory"  # nothing listens there
    with pytest.raises(RuntimeError) as failed:
        open_database(settings.model_copy(update={"database_url": url}), timeout=1.0)
    message = str(failed.value)
    assert "127.0.0.1" in message and "DATABASE_URL" in message and "s3cret" not in message
    assert redacted(url).startswith("postgresql://app:***@127.0.0.1:")
    assert redacted("postgresql://app@db/memory") == "postgresql://app@db/memory"


def test_build_deps_puts_every_store_on_postgres(pg_settings):
    deps = build_deps(pg_settings, FakeChatModel([]))
    try:
        stores = [deps.sessions, deps.entities, deps.episodes, deps.idempotency, deps.semantic_cache]
        assert {store.db.dialect for store in stores} == {"postgres"}
        assert len({id(store.db) for store in stores}) == 1  # one pool for all of them
    finally:
        deps.vectors.close()
        deps.sessions.db.close()
    assert not pg_settings.memory_path.exists()


@pytest.fixture
def client(pg_settings):
    model = FakeChatModel([contract(f"reply {i}") for i in range(10)])
    with TestClient(create_app(pg_settings, chat_model=model)) as c:
        yield c


def test_sessions_projects_and_entities_through_the_api_live_in_postgres(client, pg_settings):
    project = client.post("/projects", json={"id": "orion", "name": "Orion", "description": "the service"})
    assert project.status_code == 201, project.text
    assert client.post("/projects", json={"id": "orion", "name": "Again"}).status_code == 409
    for session_id in ("b", "a", "B"):
        created = client.post("/sessions", json={"id": session_id, "projectId": "orion"})
        assert created.status_code == 201, created.text
    assert client.post("/sessions", json={"id": "a"}).json()["error"]["param"] == "id"  # 409, taken
    page = client.get("/sessions", params={"projectId": "orion", "limit": 2}).json()
    assert page["total"] == 3 and len(page["sessions"]) == 2
    assert client.get("/projects/orion").json()["sessionCount"] == 3

    renamed = client.patch("/sessions/a", json={"name": "Deploys"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Deploys"
    moved = client.patch("/sessions/b", json={"projectId": None})
    assert moved.status_code == 200 and moved.json()["projectId"] is None

    first = client.post("/entities", json={"name": "Vega", "type": "star", "notes": "bright", "projectId": "orion"})
    assert first.status_code == 201, first.text
    client.post("/entities", json={"name": "Lyra", "type": "star", "projectId": "orion"})
    same = client.post("/entities", json={"name": "VEGA", "type": "star", "notes": "brighter", "projectId": "orion"})
    assert same.json()["id"] == first.json()["id"] and same.json()["notes"] == "brighter"
    clash = client.patch(f"/entities/{first.json()['id']}", json={"name": "lyra"})
    assert clash.status_code == 409 and clash.json()["error"]["param"] == "name"
    listed = client.get("/entities", params={"projectId": "orion"}).json()["entities"]
    assert [e["name"] for e in listed] == ["Lyra", "Vega"]

    nul = client.post("/entities", json={"name": "Deneb", "notes": "a\x00b", "projectId": "orion"})
    assert nul.status_code == 400 and nul.json()["error"]["param"] == "notes"  # Postgres stores no NUL

    assert client.delete("/projects/orion").status_code == 409  # it still has sessions
    assert client.delete("/projects/orion", params={"cascade": "true"}).status_code == 204
    assert client.get("/projects/orion").status_code == 404
    assert [s["id"] for s in client.get("/sessions").json()["sessions"]] == ["b"]

    # The rows are in Postgres; neither memory.db nor dialogues.db was made.
    db = PgDatabase(pg_settings.database_url or "", max_size=2)
    try:
        assert [row["id"] for row in db.query("SELECT id FROM sessions")] == ["b"]
        assert db.query("SELECT COUNT(*) AS n FROM entities")[0]["n"] == 0
        assert db.query("SELECT COUNT(*) AS n FROM dialogues")[0]["n"] == 0  # the jobs table is there too
    finally:
        db.close()
    assert not pg_settings.memory_path.exists() and not pg_settings.dialogues_path.exists()
