"""Sessions, projects, entities, seed-001 chat and model routes through the real app (lifespan running),
with a scripted OpenAI-compatible backend; stores checked directly in SQLite and Chroma."""

from __future__ import annotations

import json

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings
from fastapi.testclient import TestClient

from graph.wiring import open_database
from memory.db import SqliteDatabase
from memory.entities import vector_key
from memory.vectors import collection_name
from server.app import create_app

# Every test here that takes `settings` runs on the embedded profile and on Postgres + the Chroma server.
STORAGE_PROFILES = True


@pytest.fixture
def client(settings, backend):
    settings.inference_base_url = backend.base_url
    with TestClient(create_app(settings)) as c:
        yield c


def drain(client) -> None:
    """Wait for work that follows a reply (summary, naming, indexing)."""
    runtime = client.app.state.runtime
    client.portal.call(runtime.turns.drain)
    client.portal.call(runtime.deps.indexer.drain)


def say(client, session: str, text: str, project: str | None = None) -> dict:
    body = {"sessionId": session, "message": text, **({"projectId": project} if project else {})}
    r = client.post("/chat", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_chat_creates_the_session_on_first_use_and_names_it(client):
    out = say(client, "s-new", "my dog Pixel needs a walk")
    assert out == {"sessionId": "s-new", "response": "You said: my dog Pixel needs a walk", "toolCalls": [],
                   "model": "local-model", "tokenCount": out["tokenCount"]}
    assert out["tokenCount"] > 0
    drain(client)
    session = client.get("/sessions/s-new").json()
    assert session["turnCount"] == 1 and session["episodeCount"] == 1
    assert session["name"] == "Talk about my dog Pixel"


def test_a_name_set_by_the_user_is_never_overwritten(client):
    assert client.post("/sessions", json={"id": "named", "name": "Mine"}).status_code == 201
    say(client, "named", "hello")
    drain(client)
    assert client.get("/sessions/named").json()["name"] == "Mine"


def test_session_crud_and_patch_validation(client):
    assert client.post("/projects", json={"id": "p1", "name": "P1"}).status_code == 201
    for i in range(3):
        assert client.post("/sessions", json={"id": f"c{i}", "projectId": "p1" if i else None}).status_code == 201
    assert client.post("/sessions", json={"id": "c0"}).status_code == 409
    page = client.get("/sessions", params={"limit": 2}).json()
    assert page["total"] == 3 and len(page["sessions"]) == 2
    assert {s["id"] for s in client.get("/sessions", params={"projectId": "p1"}).json()["sessions"]} == {"c1", "c2"}
    r = client.patch("/sessions/c0", json={})
    assert r.status_code == 400 and r.json()["error"]["message"] == "name or projectId is required."
    assert client.patch("/sessions/c0", json={"name": "  "}).status_code == 400
    assert client.patch("/sessions/c0", json={"projectId": "nope"}).status_code == 404
    assert client.patch("/sessions/c0", json={"name": "Zero"}).json()["name"] == "Zero"
    assert client.patch("/sessions/c0", json={"projectId": "p1"}).json()["projectId"] == "p1"
    assert client.patch("/sessions/c0", json={"projectId": None}).json()["projectId"] is None
    assert client.get("/projects/p1/sessions").json()["total"] == 2
    assert client.get("/sessions/missing").status_code == 404
    assert client.post("/sessions", json={"id": "bad id!"}).status_code in (400, 422)
    # Postgres stores no NUL character in text: refused on both profiles alike, naming the field.
    for path, body in (("/projects", {"name": "a\x00b"}), ("/sessions", {"name": "a\x00b"}),
                       ("/entities", {"name": "Vega", "notes": "\x00"})):
        r = client.post(path, json=body)
        assert r.status_code == 400 and "NUL" in r.json()["error"]["message"], r.text
        assert r.json()["error"]["param"] in ("name", "notes")


def test_messages_and_memory_inspection(client):
    say(client, "insp", "The spare key is under the blue flower pot")
    say(client, "insp", "thanks")
    drain(client)
    history = client.get("/sessions/insp/messages").json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[0]["content"] == "The spare key is under the blue flower pot"
    memory = client.get("/sessions/insp/memory").json()
    assert len(memory["recentEpisodes"]) == 2 and "blue flower pot" in memory["recentEpisodes"][0]["text"]
    found = client.post("/memory/search", json={"query": "Where is the spare key?", "k": 3}).json()["results"]
    assert "blue flower pot" in found[0]["text"] and found[0]["sessionId"] == "insp" and found[0]["score"] > 0


def test_memory_search_says_why_each_memory_came_back(client):
    say(client, "why", "The spare key is under the blue flower pot")
    say(client, "why", "My sister lives in Lisbon")
    for chore in ("water the tomatoes", "renew the passport", "call the plumber"):  # BM25 needs a corpus
        say(client, "why", f"Remind me to {chore}")
    drain(client)
    r = client.post("/memory/search", json={"query": "Where is the spare key?", "k": 3})
    assert r.status_code == 200, r.text
    top = r.json()["results"][0]
    assert "blue flower pot" in top["text"]
    lexical, vector = top["scoreParts"]["lexical"], top["scoreParts"]["vector"]
    assert lexical["rank"] == 1 and lexical["bm25"] > 0  # the words matched, best of the full-text hits
    assert vector["rank"] == 1 and 0.3 <= vector["similarity"] <= 1.0  # and the meaning did too
    assert top["score"] == pytest.approx(lexical["contribution"] + vector["contribution"], abs=1e-5)
    # No word in common: found by meaning alone, and the parts say so.
    by_meaning = client.post("/memory/search", json={"query": "Which city is my sibling based in?"}).json()
    lisbon = next(h for h in by_meaning["results"] if "Lisbon" in h["text"])
    assert lisbon["scoreParts"]["lexical"] is None
    assert lisbon["scoreParts"]["vector"]["similarity"] > 0.3
    assert lisbon["score"] == pytest.approx(lisbon["scoreParts"]["vector"]["contribution"], abs=1e-5)
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"lexical", "vector"} <= set(schema["ScorePartsPublic"]["properties"])
    assert "scoreParts" in schema["MemoryHitPublic"]["properties"]


def test_isolation_canaries(client, backend):
    client.post("/projects", json={"id": "alpha", "name": "A"})
    client.post("/projects", json={"id": "beta", "name": "B"})
    say(client, "a1", "The vault code is 4417-zulu", project="alpha")
    drain(client)

    say(client, "a2", "What is the vault code?", project="alpha")
    assert "4417-zulu" in backend.turn_prompts()[-1]  # shared inside project A
    say(client, "b1", "What is the vault code?", project="beta")
    assert "4417-zulu" not in backend.turn_prompts()[-1]  # never across projects
    say(client, "free", "What is the vault code?")
    assert "4417-zulu" not in backend.turn_prompts()[-1]  # nor into the default scope
    say(client, "free-1", "The garage code is 9090-echo")
    drain(client)
    say(client, "b2", "What is the garage code?", project="beta")
    assert "9090-echo" not in backend.turn_prompts()[-1]  # and the default scope never reaches a project
    say(client, "free-2", "What is the garage code?")
    assert "9090-echo" in backend.turn_prompts()[-1]  # project-less sessions share the default scope


def test_entities_crud_recall_first_and_isolated(client, backend):
    client.post("/projects", json={"id": "ent", "name": "E"})
    created = client.post("/entities", json={"name": "Orion", "type": "service", "notes": "deploys at 04:00 UTC",
                                             "projectId": "ent"})
    assert created.status_code == 201
    entity = created.json()
    assert client.get("/entities", params={"projectId": "ent"}).json()["entities"] == [entity]
    say(client, "e1", "When does Orion deploy?", project="ent")
    prompt = backend.turn_prompts()[-1]
    assert "- Orion (service): deploys at 04:00 UTC" in prompt
    assert prompt.index("entities relevant") < prompt.index("When does Orion deploy?")
    say(client, "e2", "When does Orion deploy?")
    assert "04:00 UTC" not in backend.turn_prompts()[-1]
    patched = client.patch(f"/entities/{entity['id']}", json={"notes": "deploys at noon"}).json()
    assert patched["notes"] == "deploys at noon"
    assert client.patch(f"/entities/{entity['id']}", json={}).status_code == 400
    assert client.delete(f"/entities/{entity['id']}").status_code == 204
    assert client.get("/entities", params={"projectId": "ent"}).json()["entities"] == []
    assert client.delete(f"/entities/{entity['id']}").status_code == 404


def test_chat_stream_format_byte_for_byte(client):
    with client.stream("POST", "/chat/stream", json={"sessionId": "sse", "message": "hi there"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
        # The episode is stored before the stream ends.
        assert client.get("/sessions/sse").json()["episodeCount"] == 1
    events = raw.split("\n\n")
    assert events[-1] == ""
    lines = events[:-1]
    assert all(e.startswith("data: {") for e in lines)
    assert "[DONE]" not in raw
    texts = [json.loads(e[6:]) for e in lines[:-1]]
    assert all(list(t) == ["text"] for t in texts) and len(texts) > 1
    assert "".join(t["text"] for t in texts) == "You said: hi there"
    done = json.loads(lines[-1][6:])
    assert lines[-1] == 'data: {"done":true,"model":"local-model","tokenCount":' + str(done["tokenCount"]) + "}"


def _chroma_count(settings, key: str) -> int:
    """Vectors of a scope, in the embedded directory or the Chroma server the settings name."""
    quiet = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        host, port = settings.chroma_url.removeprefix("http://").rsplit(":", 1)
        client = chromadb.HttpClient(host=host, port=int(port), settings=quiet)
    else:
        client = chromadb.PersistentClient(path=str(settings.chroma_dir), settings=quiet)
    names = {c.name for c in client.list_collections()}
    name = collection_name("episodes", key)
    return client.get_collection(name).count() if name in names else 0


def test_cascade_delete_leaves_no_rows_vectors_or_checkpoints(settings, backend):
    settings.inference_base_url = backend.base_url
    with TestClient(create_app(settings)) as client:
        client.post("/projects", json={"id": "gone", "name": "G"})
        for s in ("g1", "g2"):
            say(client, s, f"Session {s} notes: my cat is called Tofu", project="gone")
        client.post("/entities", json={"name": "Tofu", "notes": "a cat", "projectId": "gone"})
        say(client, "keep", "unrelated and kept")
        drain(client)
        assert client.delete("/projects/gone").status_code == 409
        assert client.delete("/projects/gone", params={"cascade": "true"}).status_code == 204
        assert client.get("/projects/gone").status_code == 404
        assert client.get("/sessions/g1").status_code == 404
        say(client, "other", "anything")
        assert client.delete("/sessions/other").status_code == 204
    db = open_database(settings)  # the profile's own store: memory.db, or the Postgres database
    try:
        def count(sql: str) -> int:
            return int(db.query(sql)[0][0])

        assert count("SELECT COUNT(*) FROM episodes WHERE session_id IN ('g1','g2','other')") == 0
        assert count("SELECT COUNT(*) FROM episodes") == 1  # "keep" only
        if db.dialect == "sqlite":
            assert count("SELECT COUNT(*) FROM episodes_fts") == 1
        assert count("SELECT COUNT(*) FROM sessions WHERE id IN ('g1','g2','other')") == 0
        assert count("SELECT COUNT(*) FROM entities WHERE scope = 'project:gone'") == 0
    finally:
        db.close()
    checkpoints = SqliteDatabase(settings.checkpoints_path) if db.dialect == "sqlite" else open_database(settings)
    writes = "writes" if db.dialect == "sqlite" else "checkpoint_writes"
    try:
        assert {r[0] for r in checkpoints.query("SELECT DISTINCT thread_id FROM checkpoints")} == {"keep"}
        assert checkpoints.query(f"SELECT COUNT(*) FROM {writes} WHERE thread_id != 'keep'")[0][0] == 0
    finally:
        checkpoints.close()
    assert _chroma_count(settings, "project:gone") == 0
    assert _chroma_count(settings, vector_key("project:gone")) == 0
    assert _chroma_count(settings, "default") == 1


def test_models_manifest_is_read_fresh(settings, backend, tmp_path):
    settings.inference_base_url = backend.base_url
    manifest = tmp_path / "models.json"
    settings.models_manifest_path = manifest
    with TestClient(create_app(settings)) as client:
        r = client.get("/models")
        assert r.status_code == 503 and "does not exist" in r.json()["error"]["message"]
        manifest.write_text(json.dumps([{"value": "a.gguf", "label": "A"}]))
        assert client.get("/models").json() == [{"value": "a.gguf", "label": "A"}]
        manifest.write_text(json.dumps([{"value": "a.gguf", "label": "A"}, {"value": "b.gguf", "label": "B"}]))
        assert [m["value"] for m in client.get("/models").json()] == ["a.gguf", "b.gguf"]
        manifest.write_text("{oops")
        r = client.get("/models")
        assert r.status_code == 503 and "MODELS_MANIFEST_PATH" in r.json()["error"]["message"]
        reply = client.post("/chat", json={"sessionId": "m", "message": "hi", "model": "b.gguf"})
        assert reply.json()["model"] == "b.gguf"
        turn = [b for b in backend.requests if b["messages"][0]["role"] == "system"][-1]
        assert turn["model"] == "b.gguf"  # the chosen model reaches the inference node


def test_models_without_a_manifest_lists_the_node(client):
    assert client.get("/models").json() == [{"value": "fake-model", "label": "fake-model"}]
