"""Dialogues between two test inference nodes that answer differently, through the real service: turns
alternate and each side sees its own view, every ending reason, the concurrency limit, export, bad input."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.dialogue_voices import Voice, max_overlap
from tests.fake_backend import FakeBackend
from tests.integration.dialogue_client import participant, start, wait
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with FakeBackend(Voice("Configured")) as node:
        env = {"INFERENCE_BASE_URL": node.base_url, "MAX_CONCURRENT_DIALOGUES": "3", "DIALOGUE_MAX_TURNS": "20",
               "DIALOGUE_ALLOWED_BASE_URLS": "http://127.0.0.1:"}
        with ServiceProcess(tmp_path_factory.mktemp("dialogues"), env) as svc:
            yield svc


@pytest.fixture
def client(service):
    with httpx.Client(base_url=service.base_url, timeout=30) as c:
        yield c


def test_turns_alternate_and_each_side_sees_its_own_turns_as_assistant(client):
    ann, bob = Voice("Ann"), Voice("Bob")
    with FakeBackend(ann) as a, FakeBackend(bob) as b:
        dialogue_id = start(client, "tide pools", [participant("Ann", a.base_url), participant("Bob", b.base_url)],
                            min_turns=4, max_turns=4)
        body = wait(client, [dialogue_id])[dialogue_id]
    assert body["status"] == "done" and body["ending_reason"] == "max_turns"
    turns = body["turns"]
    assert [t["speaker"] for t in turns] == ["Ann", "Bob", "Ann", "Bob"]
    assert all(t["text"].startswith(f"{t['speaker']} thinks of") for t in turns)
    assert all(t["tokens"] > 0 and t["latency_ms"] > 0 for t in turns)
    texts = [t["text"] for t in turns]

    def view(request):
        return [(m["role"], m["content"]) for m in request["messages"][1:]]

    assert len(a.requests) == 2 and len(b.requests) == 2
    opening = a.requests[0]["messages"][1]["content"]
    assert "tide pools" in opening and "Bob" in opening
    assert view(a.requests[0]) == [("user", opening)]
    assert view(a.requests[1]) == [("user", opening), ("assistant", texts[0]), ("user", texts[1])]
    assert view(b.requests[0]) == [("user", texts[0])]
    assert view(b.requests[1]) == [("user", texts[0]), ("assistant", texts[1]), ("user", texts[2])]
    assert "You are Ann." in a.requests[0]["messages"][0]["content"]
    assert "You are Bob." in b.requests[0]["messages"][0]["content"]
    metrics = body["metrics"]
    assert metrics["turns"] == 4 and metrics["ending_reason"] == "max_turns"
    assert metrics["participants"]["Ann"]["turns"] == 2 and metrics["participants"]["Bob"]["tokens"] > 0
    assert 0 < metrics["distinct_1"] <= 1 and 0 < metrics["distinct_2"] <= 1
    assert metrics["repetition_score"] < 0.6


def test_a_closing_phrase_ends_the_dialogue_once_min_turns_are_done(client):
    # Bob says goodbye on each of his turns from the first on: the first farewell (turn 2) comes before
    # min_turns=3, the second (turn 4) ends it.
    with FakeBackend(Voice("Ann")) as a, FakeBackend(Voice("Bob", goodbye_at=1)) as b1:
        early = start(client, "kites", [participant("Ann", a.base_url), participant("Bob", b1.base_url)],
                      min_turns=1, max_turns=10)
        body = wait(client, [early])[early]
    assert body["ending_reason"] == "closing_phrase" and len(body["turns"]) == 2
    assert body["turns"][-1]["text"].endswith("goodbye!")
    with FakeBackend(Voice("Ann")) as a, FakeBackend(Voice("Bob", goodbye_at=2)) as b2:
        later = start(client, "kites again", [participant("Ann", a.base_url), participant("Bob", b2.base_url)],
                      min_turns=3, max_turns=10)
        body = wait(client, [later])[later]
    assert body["status"] == "done" and body["ending_reason"] == "closing_phrase"
    assert len(body["turns"]) == 4


def test_a_farewell_before_min_turns_does_not_end_it(client):
    with FakeBackend(Voice("Ann", goodbye_at=1)) as a, FakeBackend(Voice("Bob")) as b:
        dialogue_id = start(client, "lanterns", [participant("Ann", a.base_url), participant("Bob", b.base_url)],
                            min_turns=3, max_turns=3)
        body = wait(client, [dialogue_id])[dialogue_id]
    assert "goodbye" in body["turns"][0]["text"]
    assert body["ending_reason"] == "max_turns" and len(body["turns"]) == 3


def test_the_explicit_end_signal_ends_it_and_is_stripped(client):
    with FakeBackend(Voice("Ann")) as a, FakeBackend(Voice("Bob", end_signal_at=1)) as b:
        dialogue_id = start(client, "bees", [participant("Ann", a.base_url), participant("Bob", b.base_url)],
                            min_turns=2, max_turns=10)
        body = wait(client, [dialogue_id])[dialogue_id]
    assert body["ending_reason"] == "end_signal" and len(body["turns"]) == 2
    assert "[END]" not in body["turns"][1]["text"]


def test_a_repeated_turn_ends_it_as_repetition(client):
    with FakeBackend(Voice("Ann", repeat=True)) as a, FakeBackend(Voice("Bob")) as b:
        dialogue_id = start(client, "copper", [participant("Ann", a.base_url), participant("Bob", b.base_url)],
                            min_turns=1, max_turns=10)
        body = wait(client, [dialogue_id])[dialogue_id]
    assert body["ending_reason"] == "repetition"
    assert len(body["turns"]) == 3 and body["turns"][0]["text"] == body["turns"][2]["text"]
    assert body["metrics"]["repetition_score"] == 1.0 and body["metrics"]["max_similarity"] > 0.99


def test_a_batch_of_ten_never_runs_more_than_three_at_once_and_exports(client):
    ann, bob = Voice("Ann", delay=0.05), Voice("Bob", delay=0.05)
    with FakeBackend(ann) as a, FakeBackend(bob) as b:
        r = client.post("/dialogues/batch", json={
            "topics": [f"batch topic {i}" for i in range(10)],
            "participants": [participant("Ann", a.base_url), participant("Bob", b.base_url)],
            "min_turns": 4, "max_turns": 4})
        assert r.status_code == 202, r.text
        batch = r.json()
        ids = [d["id"] for d in batch["dialogues"]]
        assert len(ids) == 10
        bodies = wait(client, ids)
    assert {b["status"] for b in bodies.values()} == {"done"}
    assert max_overlap(ann.intervals + bob.intervals) <= 3
    assert len(ann.intervals) == len(bob.intervals) == 20
    listed = client.get("/dialogues", params={"batch": batch["batch_id"]}).json()
    assert [d["id"] for d in listed["dialogues"]] == ids and all(d["turns"] == 4 for d in listed["dialogues"])

    lines = client.get("/dialogues/export", params={"format": "openai", "batch": batch["batch_id"]}).text
    records = [json.loads(line) for line in lines.splitlines()]
    assert len(records) == 10
    for record in records:
        roles = [m["role"] for m in record["messages"]]
        assert roles == ["system", "user", "assistant", "user", "assistant"]
        assert record["messages"][0]["content"] == "You are Bob."
    lines = client.get("/dialogues/export", params={"format": "sharegpt", "topic": "batch topic 7"}).text
    records = [json.loads(line) for line in lines.splitlines()]
    assert len(records) == 1 and records[0]["topic"] == "batch topic 7"
    assert [c["from"] for c in records[0]["conversations"]] == ["system", "human", "gpt", "human", "gpt"]
    assert records[0]["conversations"][1]["value"] == bodies[records[0]["id"]]["turns"][0]["text"]
    metrics = client.get("/metrics").text
    assert 'orchestrator_dialogues_total{ending_reason="max_turns",status="done"}' in metrics


def test_export_filters_on_quality(client):
    with FakeBackend(Voice("Ann", repeat=True)) as a, FakeBackend(Voice("Bob")) as b:
        dialogue_id = start(client, "filter me", [participant("Ann", a.base_url), participant("Bob", b.base_url)],
                            max_turns=6)
        wait(client, [dialogue_id])
    ids = [json.loads(line)["id"] for line in client.get("/dialogues/export", params={
        "format": "sharegpt", "topic": "filter me"}).text.splitlines()]
    assert ids == [dialogue_id]
    kept = client.get("/dialogues/export", params={"format": "sharegpt", "topic": "filter me",
                                                   "max_repetition": 0.5}).text
    assert kept == ""


def test_a_jsonl_upload_queues_one_dialogue_a_line(client):
    with FakeBackend(Voice("Ann")) as a, FakeBackend(Voice("Bob")) as b:
        people = [participant("Ann", a.base_url), participant("Bob", b.base_url)]
        upload = "\n".join(json.dumps({"topic": t, "participants": people, "max_turns": 2})
                           for t in ("owls", "moths")) + "\n"
        r = client.post("/dialogues/batch", content=upload, headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 202, r.text
        bodies = wait(client, [d["id"] for d in r.json()["dialogues"]])
    assert sorted(b["topic"] for b in bodies.values()) == ["moths", "owls"]
    assert all(len(b["turns"]) == 2 for b in bodies.values())


@pytest.mark.parametrize("body, where", [
    ({"topic": "   "}, "topic"),
    ({"topic": "a\x00b"}, "NUL"),  # Postgres stores no NUL: refused on both profiles alike
    ({"topic": "x", "min_turns": 5, "max_turns": 3}, "min_turns (5) must not exceed max_turns (3)"),
    ({"topic": "x", "participants": [{"name": "A", "mood": "grumpy"}, {"name": "B"}]}, "participants.0.mood"),
    ({"topic": "x", "participants": [{"name": "A"}]}, "participants"),
    ({"topic": "x", "participants": [{"name": "A", "base_url": "ftp://x"}, {"name": "B"}]}, "http://"),
    ({"topic": "x", "max_turns": 21}, "DIALOGUE_MAX_TURNS"),
    ({"topic": "x", "colour": "red"}, "colour"),
    ({"topic": "x", "participants": [{"name": "Ann"}, {"name": "ann"}]}, "different names"),
    ({"topic": "x", "participants": [{"name": "A", "base_url": "http://10.0.0.7/v1"}, {"name": "B"}]},
     "DIALOGUE_ALLOWED_BASE_URLS"),
])
def test_bad_input_is_a_400_in_the_openai_error_shape(client, body, where):
    r = client.post("/dialogues", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and where in error["message"] + str(error["param"])


def test_bad_batches_are_400s_and_unknown_ids_404(client):
    r = client.post("/dialogues/batch", json={"topics": []})
    assert r.status_code == 400 and "topics" in r.json()["error"]["message"]
    r = client.post("/dialogues/batch", content='{"topic": "fine"}\n{"topic": ""}\n',
                    headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 400 and "line 2" in r.json()["error"]["message"]
    assert client.get("/dialogues/export", params={"format": "csv"}).status_code == 400
    r = client.get("/dialogues/nope")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    assert client.delete("/dialogues/nope").status_code == 404
