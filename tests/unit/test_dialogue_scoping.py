"""API_KEY_SCOPED_SESSIONS covers dialogues too: a key reaches only the dialogues it queued. Two keys through
the real app, with a scripted inference node."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.unit.test_auth_scoping import A, B, assert_not_found


@pytest.fixture
def client(settings, backend):
    settings.inference_base_url = backend.base_url
    settings.api_keys = "key-a,key-b"
    settings.api_key_scoped_sessions = True
    with TestClient(create_app(settings)) as c:
        yield c


def test_another_keys_dialogues_are_unknown(client):
    r = client.post("/dialogues", headers=A, json={"topic": "otters", "max_turns": 2})
    assert r.status_code == 202, r.text
    dialogue_id = r.json()["id"]
    deadline = time.monotonic() + 30
    while client.get(f"/dialogues/{dialogue_id}", headers=A).json()["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.get(f"/dialogues/{dialogue_id}", headers=A).json()["turns"]
    assert_not_found(client.get(f"/dialogues/{dialogue_id}", headers=B))
    assert_not_found(client.delete(f"/dialogues/{dialogue_id}", headers=B))
    assert [d["id"] for d in client.get("/dialogues", headers=A).json()["dialogues"]] == [dialogue_id]
    theirs = client.get("/dialogues", headers=B).json()
    assert theirs["dialogues"] == [] and theirs["counts"] == {}
    assert client.get("/dialogues/export", headers=A).text.count("\n") == 1
    assert client.get("/dialogues/export", headers=B).text == ""
    assert client.get("/dialogues", headers={}).status_code == 401
