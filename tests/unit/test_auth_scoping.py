"""API_KEY_SCOPED_SESSIONS: what one key's traffic creates (sessions, projects, memory, entities) is not
reachable with another key. Two keys through the real app, with a scripted inference node."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from fastapi.testclient import TestClient

from memory.db import SqliteDatabase
from memory.sessions import SessionStore
from server.app import create_app
from tests.unit.test_memory_api import drain

A = {"X-API-Key": "key-a"}
B = {"Authorization": "Bearer key-b"}
A_OWNER = hashlib.sha256(b"key-a").hexdigest()[:16]


@pytest.fixture
def client(settings, backend):
    settings.inference_base_url = backend.base_url
    settings.api_keys = "key-a,key-b"
    settings.api_key_scoped_sessions = True
    with TestClient(create_app(settings)) as c:
        yield c


def turn(client, key: dict, text: str, session: str | None = None, project: str | None = None):
    headers = {**key, **({"X-Session-Id": session} if session else {})}
    headers.update({"X-Project-Id": project} if project else {})
    return client.post("/v1/chat/completions", headers=headers, json={"messages": [{"role": "user", "content": text}]})


def assert_not_found(response) -> None:
    """404 in the API's error shape, saying nothing of the owner."""
    assert response.status_code == 404, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert A_OWNER not in response.text and "key-a" not in response.text


def test_another_keys_session_is_404_and_unlisted(client):
    assert client.post("/sessions", headers=A, json={"id": "sa", "name": "Mine"}).status_code == 201
    for method, path, body in (("GET", "/sessions/sa", None), ("GET", "/sessions/sa/messages", None),
                               ("GET", "/sessions/sa/memory", None), ("PATCH", "/sessions/sa", {"name": "Taken"}),
                               ("DELETE", "/sessions/sa", None)):
        assert_not_found(client.request(method, path, headers=B, json=body))
    assert client.get("/sessions", headers=B).json()["total"] == 0
    listed = client.get("/sessions", headers=A).json()
    assert [s["id"] for s in listed["sessions"]] == ["sa"] and listed["total"] == 1
    assert client.get("/sessions/sa", headers=A).json()["name"] == "Mine"  # B's PATCH and DELETE did nothing


def test_another_keys_project_is_404_and_unlisted(client):
    assert client.post("/projects", headers=A, json={"id": "pa", "name": "A's"}).status_code == 201
    assert client.post("/sessions", headers=A, json={"id": "in-pa", "projectId": "pa"}).status_code == 201
    assert client.post("/sessions", headers=B, json={"id": "b-own"}).status_code == 201
    for method, path, body in (("GET", "/projects/pa", None), ("GET", "/projects/pa/sessions", None),
                               ("PATCH", "/projects/pa", {"name": "Taken"}),
                               ("DELETE", "/projects/pa?cascade=true", None),
                               ("POST", "/sessions", {"id": "b-in-pa", "projectId": "pa"}),
                               ("PATCH", "/sessions/b-own", {"projectId": "pa"}),
                               ("GET", "/entities?projectId=pa", None),
                               ("POST", "/entities", {"name": "Orion", "projectId": "pa"}),
                               ("POST", "/memory/search", {"query": "anything", "projectId": "pa"})):
        assert_not_found(client.request(method, path, headers=B, json=body))
    assert client.get("/projects", headers=B).json()["projects"] == []
    [project] = client.get("/projects", headers=A).json()["projects"]
    assert project["id"] == "pa" and project["name"] == "A's" and project["sessionCount"] == 1


def test_turns_on_another_keys_session_or_project_are_404(client):
    assert turn(client, A, "hello from A", session="shared").status_code == 200
    assert_not_found(turn(client, B, "hello from B", session="shared"))
    assert_not_found(client.post("/chat", headers=B, json={"sessionId": "shared", "message": "hi"}))
    agent = {"input": {"messages": [{"type": "human", "content": "hi"}]},
             "config": {"configurable": {"thread_id": "shared"}}}
    assert_not_found(client.post("/agent/invoke", headers=B, json=agent))
    assert_not_found(client.post("/agent/stream", headers=B, json=agent))
    drain(client)
    history = client.get("/sessions/shared/messages", headers=A).json()["messages"]
    assert [m["content"] for m in history] == ["hello from A", "You said: hello from A"]  # nothing of B's

    assert turn(client, A, "project work", session="a-proj", project="pa2").status_code == 200  # creates pa2
    assert_not_found(turn(client, B, "sneak in", session="b-proj", project="pa2"))
    assert_not_found(client.post("/chat", headers=B, json={"sessionId": "b-proj", "message": "x", "projectId": "pa2"}))
    assert client.get("/projects/pa2", headers=A).json()["sessionCount"] == 1
    assert turn(client, B, "my own", session="b-proj").status_code == 200  # B's own session is fine


def test_the_same_first_message_gives_each_key_its_own_derived_session(client):
    first_a = turn(client, A, "Let us plan the trip")
    first_b = turn(client, B, "Let us plan the trip")
    assert first_a.status_code == first_b.status_code == 200
    sid_a, sid_b = first_a.headers["x-session-id"], first_b.headers["x-session-id"]
    assert sid_a.startswith("auto-") and sid_b.startswith("auto-") and sid_a != sid_b
    drain(client)
    for key, sid in ((A, sid_a), (B, sid_b)):
        assert len(client.get(f"/sessions/{sid}/messages", headers=key).json()["messages"]) == 2


def test_recall_and_memory_search_never_cross_keys(client, backend):
    assert turn(client, A, "The spare key is under the blue flower pot", session="a-1").status_code == 200
    drain(client)
    assert turn(client, A, "Where is the spare key?", session="a-2").status_code == 200
    assert "blue flower pot" in backend.turn_prompts()[-1]  # recall works across A's own sessions
    assert turn(client, B, "Where is the spare key?", session="b-1").status_code == 200
    assert "blue flower pot" not in backend.turn_prompts()[-1]  # and never reaches B's prompt

    found_a = client.post("/memory/search", headers=A, json={"query": "Where is the spare key?"}).json()["results"]
    assert any("blue flower pot" in hit["text"] for hit in found_a)
    found_b = client.post("/memory/search", headers=B, json={"query": "Where is the spare key?"}).json()["results"]
    assert all("blue flower pot" not in hit["text"] for hit in found_b)


def test_entities_are_confined_to_the_keys_scopes(client, backend):
    created = client.post("/entities", headers=A, json={"name": "Orion", "type": "service",
                                                         "notes": "deploys at 04:00 UTC"})
    assert created.status_code == 201
    entity = created.json()
    assert client.get("/entities", headers=A).json()["entities"] == [entity]
    assert client.get("/entities", headers=B).json()["entities"] == []
    assert_not_found(client.patch(f"/entities/{entity['id']}", headers=B, json={"notes": "hijacked"}))
    assert_not_found(client.delete(f"/entities/{entity['id']}", headers=B))

    assert turn(client, B, "When does Orion deploy?", session="b-ent").status_code == 200
    assert "04:00 UTC" not in backend.turn_prompts()[-1]
    assert turn(client, A, "When does Orion deploy?", session="a-ent").status_code == 200
    assert "- Orion (service): deploys at 04:00 UTC" in backend.turn_prompts()[-1]
    assert client.get("/entities", headers=A).json()["entities"][0]["notes"] == "deploys at 04:00 UTC"


def test_a_database_from_before_owners_gets_the_column(tmp_path):
    path = tmp_path / "memory.db"
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE sessions (id TEXT PRIMARY KEY, name TEXT, project_id TEXT, created_at REAL NOT NULL,
                                   updated_at REAL NOT NULL, turn_count INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT,
                                   created_at REAL NOT NULL, updated_at REAL NOT NULL);
            INSERT INTO sessions (id, created_at, updated_at) VALUES ('old', 1, 1);
        """)
    db = SqliteDatabase(path)
    store = SessionStore(db)
    SessionStore(db)  # opening twice is fine
    assert store.get("old")["owner"] is None
    assert store.create("new", None, None, owner="abc")["owner"] == "abc"
    assert store.create_project("p", "P", None, owner="abc")["owner"] == "abc"
    assert [s["id"] for s in store.list(owner="abc")[0]] == ["new"]
    assert {s["id"] for s in store.list()[0]} == {"old", "new"}
    db.close()
