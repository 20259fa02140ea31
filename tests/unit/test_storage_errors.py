"""Input the service cannot store is a 400 that names the field, on every door, before anything runs; a
failure of the service's own storage is a 500 that says so (a stream ends with an error event), never
blamed on the inference node, and leaves nothing of the turn behind (no history, no episode)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.fake_backend import FakeBackend
from tests.unit.test_agent_errors import error_events

HUGE = 2**70  # valid JSON, beyond msgpack's 64 bits: the checkpoint cannot hold it
FIELD = "additional_kwargs.n"


@pytest.fixture
def node():
    with FakeBackend() as backend:
        yield backend


@pytest.fixture
def client(settings, node):
    settings.inference_base_url = node.base_url
    with TestClient(create_app(settings)) as c:
        yield c


def agent_input(session: str) -> dict:
    return {"input": {"messages": [{"type": "human", "content": "hi", "additional_kwargs": {"n": HUGE}}]},
            "config": {"configurable": {"thread_id": session}}}


def assert_nothing_kept(client: TestClient, session: str) -> None:
    """The session (if it exists) holds no message and no episode."""
    r = client.get(f"/sessions/{session}/messages")
    if r.status_code == 200:
        assert r.json()["messages"] == []
        assert client.get(f"/sessions/{session}/memory").json()["recentEpisodes"] == []
    else:
        assert r.status_code == 404


@pytest.mark.parametrize("route", ["invoke", "stream", "stream_events"])
def test_an_unstorable_value_on_agent_is_a_400_naming_the_field(client, node, route):
    body = agent_input(f"huge-{route}")
    if route == "stream_events":
        body["version"] = "v2"
    r = client.post(f"/agent/{route}", json=body)
    assert r.status_code == 400, r.text
    assert FIELD in r.json()["error"]["message"]
    assert not node.requests  # refused before anything ran
    assert_nothing_kept(client, f"huge-{route}")


def test_an_unstorable_value_in_a_batch_is_a_400(client, node):
    r = client.post("/agent/batch", json={"inputs": [agent_input("b")["input"]]})
    assert r.status_code == 400 and FIELD in r.json()["error"]["message"], r.text
    assert not node.requests


def test_an_unstorable_tool_input_on_the_messages_api_is_a_400(client, node):
    call = {"type": "tool_use", "id": "t1", "name": "read", "input": {"n": HUGE}}
    messages = [{"role": "user", "content": "read it"}, {"role": "assistant", "content": [call]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]
    r = client.post("/v1/messages", headers={"X-Claude-Code-Session-Id": "huge-anthropic"},
                    json={"model": "claude-x", "max_tokens": 50, "messages": messages})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error" and ".n" in r.json()["error"]["message"]
    assert not node.requests


def test_a_lone_surrogate_is_a_400(client, node):
    body = b'{"input": {"messages": [{"type": "human", "content": "bad \\ud800 text"}]}}'
    r = client.post("/agent/invoke", headers={"X-Session-Id": "surrogate", "Content-Type": "application/json"},
                    content=body)
    assert r.status_code == 400, r.text
    assert "input.messages[0].content" in r.json()["error"]["message"]
    assert not node.requests
    assert_nothing_kept(client, "surrogate")


class CheckpointsLocked:
    """Another connection holds the checkpoint database's write lock: the turn's checkpoint cannot be saved
    (the service waits out its 5 s busy timeout, then SQLite says `database is locked`)."""

    def __init__(self, settings) -> None:
        self.conn = sqlite3.connect(settings.checkpoints_path, isolation_level=None)

    def __enter__(self) -> CheckpointsLocked:
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def assert_storage_error(error: dict) -> None:
    message = json.dumps(error)
    assert "storage" in message and "database is locked" in message
    assert "inference node at" not in message


def test_a_checkpoint_that_cannot_be_saved_is_a_500_that_says_so(client, settings):
    with CheckpointsLocked(settings):
        r = client.post("/v1/chat/completions", headers={"X-Session-Id": "locked"},
                        json={"messages": [{"role": "user", "content": "hello"}]})
    assert r.status_code == 500, r.text
    assert r.json()["error"]["type"] == "storage_error"
    assert_storage_error(r.json())
    assert_nothing_kept(client, "locked")  # the episode persist wrote is gone with the turn
    ok = client.post("/v1/chat/completions", headers={"X-Session-Id": "locked"},
                     json={"messages": [{"role": "user", "content": "again"}]})
    assert ok.status_code == 200
    assert client.get("/sessions/locked").json()["episodeCount"] == 1


def test_a_storage_failure_ends_a_stream_with_an_error_event(client, settings):
    with CheckpointsLocked(settings):
        r = client.post("/agent/stream_events", headers={"X-Session-Id": "locked-stream"},
                        json={"input": {"messages": [{"type": "human", "content": "hello"}]}, "version": "v2"})
        openai = client.post("/v1/chat/completions", headers={"X-Session-Id": "locked-openai"},
                             json={"stream": True, "messages": [{"role": "user", "content": "hello"}]})
    assert r.status_code == 200
    errors = error_events(r.text)
    assert len(errors) == 1 and errors[0]["status_code"] == 500, r.text
    assert_storage_error(errors[0])
    lines = [line.removeprefix("data: ") for line in openai.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    assert_storage_error(json.loads(lines[-2]))
    for session in ("locked-stream", "locked-openai"):
        assert_nothing_kept(client, session)


def test_an_unstorable_tool_call_argument_on_the_openai_route_is_a_400(client, node):
    call = {"id": "c1", "type": "function", "function": {"name": "read", "arguments": json.dumps({"n": HUGE})}}
    messages = [{"role": "user", "content": "read it"}, {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"}]
    r = client.post("/v1/chat/completions", headers={"X-Session-Id": "huge-openai"}, json={"messages": messages})
    assert r.status_code == 400, r.text
    assert "tool_calls[0].args.n" in r.json()["error"]["message"]
    assert not node.requests
    assert_nothing_kept(client, "huge-openai")
