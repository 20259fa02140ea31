"""Import and export through the real server and a real HTTP client (httpx): recall finds what was imported,
dated as given; a bad line stores nothing; a retry stores nothing twice; export round-trips; projects stay apart."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration
START = datetime(2023, 5, 1, 10, tzinfo=UTC)
CLI = [str(Path(sys.executable).with_name("orchestrator"))]


@pytest.fixture(scope="module")
def service(backend, tmp_path_factory):
    with ServiceProcess(tmp_path_factory.mktemp("transfer"), {"INFERENCE_BASE_URL": backend.base_url}) as svc:
        yield svc


@pytest.fixture()
def client(service):
    with httpx.Client(base_url=service.base_url, timeout=120) as c:
        yield c


def conversation(n: int, tag: str) -> list[dict]:
    """`n` alternating messages, one a day from 2023-05-01, the 5th holding a fact unique to `tag`."""
    out = []
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        text = (f"My sister {tag} adopted a greyhound called Zephyrine{tag}" if i == 4
                else f"small talk number {i} about the weather")
        out.append({"role": role, "content": text, "name": "Caroline" if role == "user" else "Melanie",
                    "timestamp": (START + timedelta(days=i)).isoformat().replace("+00:00", "Z")})
    return out


def jsonl(lines: list[dict]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


def search(client: httpx.Client, query: str, project: str | None) -> list[dict]:
    body = {"query": query, "k": 10, **({"projectId": project} if project else {})}
    done = client.post("/memory/search", json=body)
    assert done.status_code == 200, done.text
    return done.json()["results"]


def test_import_then_recall_finds_the_fact_dated_as_given(client):
    client.post("/projects", json={"id": "imp-a", "name": "A"}).raise_for_status()
    done = client.post("/sessions/imp-s1/import", params={"projectId": "imp-a"},
                       json={"messages": conversation(10, "alpha")})
    assert done.status_code == 200, done.text
    assert done.json() == {"sessionId": "imp-s1", "projectId": "imp-a", "imported": 10, "skipped": 0,
                           "episodes": 5, "entities": 0, "memoryPending": False}  # too short to summarise
    hits = search(client, "what dog did the sister adopt? Zephyrinealpha", "imp-a")
    top = hits[0]
    assert "Zephyrinealpha" in top["text"] and top["sessionId"] == "imp-s1"
    assert top["createdAt"].startswith("2023-05-05")  # the exchange's first message's time
    assert top["text"].startswith("[2023-05-05] Caroline: My sister") and "\nMelanie: " in top["text"]  # speakers
    assert top["scoreParts"]["vector"] is not None  # embedded before the import answered
    named = search(client, "What did Caroline say on 3 May, 2023?", "imp-a")[0]  # a day, not a word of it
    assert named["createdAt"].startswith("2023-05-03") and named["scoreParts"]["date"] == {"rank": 1,
                                                                                          "contribution": 0.032787}
    memory = client.get("/sessions/imp-s1/memory").json()
    assert [e["createdAt"][:10] for e in memory["recentEpisodes"]] == [f"2023-05-{d:02d}" for d in (1, 3, 5, 7, 9)]
    messages = client.get("/sessions/imp-s1/messages").json()["messages"]
    assert [m["content"] for m in messages] == [m["content"] for m in conversation(10, "alpha")]


def test_a_turn_after_an_import_goes_on_from_it(client):
    client.post("/sessions/imp-turn/import", json={"messages": conversation(6, "turn")}).raise_for_status()
    done = client.post("/v1/chat/completions", headers={"X-Session-Id": "imp-turn"},
                       json={"model": "m", "messages": [{"role": "user", "content": "and the greyhound?"}]})
    assert done.status_code == 200, done.text
    messages = client.get("/sessions/imp-turn/messages").json()["messages"]
    assert [m["role"] for m in messages[-2:]] == ["user", "assistant"] and len(messages) == 8
    assert client.get("/sessions/imp-turn").json()["episodeCount"] == 4


def test_a_bad_line_names_its_number_and_stores_nothing(client):
    lines = [json.dumps(m) for m in conversation(30, "broken")]
    lines[16] = '{"role": "user", "content": 17'  # line 17 of 30 is not JSON
    done = client.post("/sessions/imp-bad/import", content="\n".join(lines),
                       headers={"Content-Type": "application/x-ndjson"})
    assert done.status_code == 400 and "line 17" in done.json()["error"]["message"], done.text
    lines[16] = json.dumps({"role": "narrator", "content": "x"})  # JSON, but no such role
    done = client.post("/sessions/imp-bad/import", content="\n".join(lines))
    assert done.status_code == 400 and "line 17" in done.json()["error"]["message"], done.text
    assert client.get("/sessions/imp-bad").status_code == 404
    assert not [h for h in search(client, "Zephyrinebroken greyhound", None) if "Zephyrinebroken" in h["text"]]


def test_a_retried_import_stores_nothing_twice(client):
    body = jsonl(conversation(8, "retry"))
    first = client.post("/sessions/imp-retry/import", content=body).json()
    again = client.post("/sessions/imp-retry/import", content=body).json()
    assert (first["imported"], again["imported"], again["skipped"]) == (8, 0, 8)
    assert len(client.get("/sessions/imp-retry/messages").json()["messages"]) == 8
    assert client.get("/sessions/imp-retry").json()["episodeCount"] == 4
    assert len([h for h in search(client, "Zephyrineretry greyhound", None) if "Zephyrineretry" in h["text"]]) == 1


def test_export_round_trips_through_import(client):
    entity = {"type": "entity", "name": "Zephyrine", "entityType": "pet", "notes": "a greyhound"}
    client.post("/sessions/imp-rt/import", params={"projectId": "imp-rt-from"},
                content=jsonl([*conversation(6, "roundtrip"), entity])).raise_for_status()
    exported = client.get("/sessions/imp-rt/export")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/x-ndjson")
    assert entity in [json.loads(line) for line in exported.text.splitlines()]
    client.post("/sessions/imp-rt-copy/import", params={"projectId": "imp-rt-to"},
                content=exported.text).raise_for_status()
    copy = client.get("/sessions/imp-rt-copy/export").text

    def body(text: str) -> list[dict]:
        return [line for line in map(json.loads, text.splitlines()) if line["type"] != "session"]

    assert body(copy) == body(exported.text)
    messages = [line for line in body(copy) if line["type"] == "message"]
    assert [m["content"] for m in messages] == [m["content"] for m in conversation(6, "roundtrip")]
    assert messages[2]["timestamp"].startswith("2023-05-03") and messages[2]["name"] == "Caroline"


def test_project_export_holds_each_session(client):
    client.post("/projects", json={"id": "imp-p", "name": "P"}).raise_for_status()
    for s in ("imp-p1", "imp-p2"):
        client.post(f"/sessions/{s}/import", params={"projectId": "imp-p"},
                    content=jsonl(conversation(4, s))).raise_for_status()
    lines = [json.loads(x) for x in client.get("/projects/imp-p/export").text.splitlines()]
    assert [line["id"] for line in lines if line["type"] == "session"] == ["imp-p1", "imp-p2"]
    assert sum(line["type"] == "message" for line in lines) == 8


def test_an_import_into_one_project_is_never_recalled_in_another(client):
    client.post("/projects", json={"id": "imp-b", "name": "B"}).raise_for_status()
    client.post("/sessions/imp-sb/import", params={"projectId": "imp-b"},
                json={"messages": conversation(10, "bravo")}).raise_for_status()
    assert any("Zephyrinebravo" in h["text"] for h in search(client, "Zephyrinebravo greyhound", "imp-b"))
    for query in ("Zephyrinebravo greyhound", "my sister adopted a dog"):
        assert all(h["sessionId"] == "imp-s1" for h in search(client, query, "imp-a"))


def test_cli_imports_a_file_in_parts_with_progress_and_resumes(service, client, tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_text(jsonl(conversation(2400, "cli")))  # three parts of at most 1,000 messages
    args = [*CLI, "import", str(path), "--session", "imp-cli", "--base-url", service.base_url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == ["1000/2400 messages (1000 new)", "2000/2400 messages (2000 new)",
                                            "2400/2400 messages (2400 new)"]
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "imported 0 messages" in again.stdout, again.stdout + again.stderr
    assert client.get("/sessions/imp-cli").json()["episodeCount"] == 1200


def test_cli_names_a_bad_line_and_sends_nothing(service, client, tmp_path):
    lines = [json.dumps(m) for m in conversation(30, "clibad")]
    lines[16] = "not json"
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines))
    done = subprocess.run([*CLI, "import", str(path), "--session", "imp-clibad", "--base-url", service.base_url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "line 17" in done.stderr, done.stderr
    assert client.get("/sessions/imp-clibad").status_code == 404


def test_another_keys_session_can_be_neither_imported_into_nor_exported(backend, tmp_path):
    env = {"INFERENCE_BASE_URL": backend.base_url, "API_KEYS": "k1,k2", "API_KEY_SCOPED_SESSIONS": "true"}
    with ServiceProcess(tmp_path, env) as svc, httpx.Client(base_url=svc.base_url, timeout=120) as c:
        one, two = {"Authorization": "Bearer k1"}, {"Authorization": "Bearer k2"}
        body = {"messages": conversation(6, "scoped")}
        assert c.post("/sessions/mine/import", json=body, headers=one).status_code == 200
        assert c.post("/sessions/mine/import", json=body, headers=two).status_code == 404
        assert c.get("/sessions/mine/export", headers=two).status_code == 404
        assert c.post("/sessions/mine/import", json=body).status_code == 401
        exported = c.get("/sessions/mine/export", headers=one)
        assert exported.status_code == 200 and "Zephyrinescoped" in exported.text
