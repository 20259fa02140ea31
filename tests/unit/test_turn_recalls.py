"""`GET /sessions/{id}/turns` and `/turns/{n}/recall`: what recall put in each turn's prompt, through the real
app (lifespan running) in front of the scripted backend; kept across a restart, gone with its session."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient

from memory import turn_recalls
from memory.episodes import Episode, EpisodeStore
from memory.turn_recalls import build_record, session_turns
from server.app import create_app


@pytest.fixture
def client(settings, backend):
    settings.inference_base_url = backend.base_url
    with TestClient(create_app(settings)) as c:
        yield c


def drain(client) -> None:
    """Wait for what follows a reply (naming, indexing), so the first session's episode is searchable."""
    runtime = client.app.state.runtime
    client.portal.call(runtime.turns.drain)
    client.portal.call(runtime.deps.indexer.drain)


def say(client, session: str, text: str, project: str) -> None:
    r = client.post("/chat", json={"sessionId": session, "message": text, "projectId": project})
    assert r.status_code == 200, r.text


def test_a_turn_keeps_the_episodes_and_entities_recall_put_in_its_prompt(client, settings, backend):
    say(client, "earlier", "The spare key is under the blue flower pot", "home")
    created = client.post("/entities", json={"name": "Pixel", "type": "pet", "notes": "a grey cat",
                                             "projectId": "home"})
    assert created.status_code == 201, created.text
    drain(client)
    say(client, "later", "Where is the spare key? Ask Pixel.", "home")

    turns = client.get("/sessions/later/turns").json()
    assert [t["turn"] for t in turns["turns"]] == [1]
    reply = [m for m in client.get("/sessions/later/messages").json()["messages"] if m["role"] == "assistant"]
    assert turns["turns"][0]["messageId"] == reply[0]["id"]

    one = client.get("/sessions/later/turns/1/recall")
    assert one.status_code == 200, one.text
    recall = one.json()["recall"]
    assert recall["degraded"] is False and recall["error"] is None and recall["summaryUsed"] is False
    top = recall["episodes"][0]
    assert top["sessionId"] == "earlier" and "blue flower pot" in top["text"] and top["inPrompt"] is True
    assert top["score"] > 0 and top["scoreParts"]["lexical"]["rank"] == 1
    # What the record says was in the prompt is what the node was sent.
    prompt = next(p for p in reversed(backend.turn_prompts()) if "Where is the spare key" in p)
    assert "blue flower pot" in prompt
    assert [(e["name"], e["score"], e["inPrompt"]) for e in recall["entities"]] == [("Pixel", 1.0, True)]
    assert recall["entities"][0]["id"] == created.json()["id"]

    # The first session's own turn recalled nothing (an empty project), but it is recorded too.
    first = client.get("/sessions/earlier/turns/1/recall").json()["recall"]
    assert first["episodes"] == [] and first["entities"] == []


def test_turn_numbers_and_sessions_are_checked(client):
    say(client, "solo", "hello there", "p")
    missing = client.get("/sessions/solo/turns/2/recall")
    assert missing.status_code == 404 and "no turn 2" in missing.json()["error"]["message"]
    assert client.get("/sessions/solo/turns/0/recall").status_code == 400
    assert client.get("/sessions/solo/turns/x/recall").status_code == 400
    assert client.get("/sessions/nobody/turns").status_code == 404
    assert client.get("/sessions/nobody/turns/1/recall").json()["error"]["param"] == "sessionId"


def test_records_survive_a_restart_and_go_with_their_session(settings, backend):
    settings.inference_base_url = backend.base_url
    with TestClient(create_app(settings)) as c:
        say(c, "kept", "My locker code is 4711", "gym")
        drain(c)
        say(c, "kept", "What is my locker code?", "gym")
        before = c.get("/sessions/kept/turns").json()
    with TestClient(create_app(settings)) as c:
        assert c.get("/sessions/kept/turns").json() == before
        assert len(before["turns"]) == 2 and all(t["recall"] is not None for t in before["turns"])
        assert c.delete("/sessions/kept").status_code == 204
    with sqlite3.connect(settings.memory_path) as db:
        assert db.execute("SELECT COUNT(*) FROM turn_recalls").fetchone()[0] == 0


def test_the_record_says_when_the_summary_was_in_the_prompt(settings, backend):
    settings.inference_base_url = backend.base_url
    settings.summary_trigger_messages = 4
    settings.recent_messages = 2
    with TestClient(create_app(settings)) as c:
        for text in ("first note", "second note", "third note"):
            say(c, "long", text, "notes")
            drain(c)  # the summary is written after the reply
        assert c.get("/sessions/long").json()["summary"]
        say(c, "long", "what did I note?", "notes")
        turns = c.get("/sessions/long/turns").json()["turns"]
    assert turns[0]["recall"]["summaryUsed"] is False
    assert turns[-1]["recall"]["summaryUsed"] is True


def test_a_record_marks_what_the_token_budget_left_out():
    recalled = {"episodes": ["doc one", "doc two"], "degraded": True, "error": "vector search failed",
                "episode_hits": [{"id": "e1", "sessionId": "s", "score": 0.02, "scoreParts": None},
                                 {"id": "e2", "sessionId": "s", "score": 0.01, "scoreParts": None}],
                "entities": ["Pixel (pet): a cat"], "entity_hits": [{"id": "x", "name": "Pixel", "score": 1.0}]}
    record = build_record(recalled, {"episodes": 1, "entities": 1, "summary": False}, "a summary")
    assert [(e["id"], e["inPrompt"]) for e in record["episodes"]] == [("e1", True), ("e2", False)]
    assert record["entities"] == [{"id": "x", "name": "Pixel", "score": 1.0, "text": "Pixel (pet): a cat",
                                   "inPrompt": True}]
    assert (record["summaryUsed"], record["degraded"], record["error"]) == (False, True, "vector search failed")


def test_a_record_is_a_turn_exactly_when_its_episode_is(database):
    """On both dialects: written in the episode's transaction, listed once committed, gone with a discarded
    turn, replaced when written again, and deleted with the session."""
    store = EpisodeStore(database)

    def records() -> int:
        return int(database.query("SELECT count(*) AS n FROM turn_recalls")[0]["n"])

    store.add(Episode("s", "default", "first", "one", user_msg_id="u1", ai_msg_id="ai1",
                      recall={"summaryUsed": False}), committed=False)
    assert session_turns(database, "s") == [] and records() == 1
    store.commit_session("s", ["ai1"])
    [turn] = session_turns(database, "s")
    assert (turn["turn"], turn["messageId"], turn["userMessageId"], turn["record"]) == (1, "ai1", "u1",
                                                                                        {"summaryUsed": False})
    store.add(Episode("s", "default", "second", "two", ai_msg_id="ai2", recall={"summaryUsed": True}),
              committed=False)
    assert store.discard_uncommitted("s") == 1 and records() == 1
    first = store.by_reply("ai1")
    assert first is not None
    with database.transaction() as conn:  # written again (the same episode id): one record, the new one
        turn_recalls.write(conn, first.id, {"summaryUsed": True})
    assert [t["record"] for t in session_turns(database, "s")] == [{"summaryUsed": True}] and records() == 1
    store.delete_session("s")
    assert session_turns(database, "s") == [] and records() == 0
