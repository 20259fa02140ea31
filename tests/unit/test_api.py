"""The HTTP surface through the real app (lifespan running) with a fake chat model."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.fakes import FakeChatModel, contract

# Every test here that takes `settings` runs on the embedded profile and on Postgres + the Chroma server.
STORAGE_PROFILES = True


@pytest.fixture
def client(settings):
    model = FakeChatModel([contract(f"reply {i}") for i in range(20)])
    with TestClient(create_app(settings, chat_model=model)) as c:
        c.model = model
        yield c


def chat(client, content="hello", headers=None, **extra):
    body = {"model": "m", "messages": [{"role": "user", "content": content}], **extra}
    return client.post("/v1/chat/completions", json=body, headers=headers or {"X-Session-Id": "api-1"})


def test_completion_shape_and_session_header(client):
    r = chat(client)
    assert r.status_code == 200
    body = r.json()
    assert r.headers["x-session-id"] == "api-1"
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "reply 0"}
    assert body["choices"][0]["finish_reason"] == "stop"


def test_streaming_sends_only_the_response_text(client):
    with client.stream("POST", "/v1/chat/completions/stream", headers={"X-Session-Id": "api-2"},
                       json={"messages": [{"role": "user", "content": "hi"}],
                             "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "reply 0"
    assert "assistant_response" not in "".join(lines)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and "usage" in chunks[-1]


def test_derived_session_id_is_stable_for_resent_histories(client):
    first = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "start"}]})
    sid = first.headers["x-session-id"]
    assert sid.startswith("auto-")
    history = [{"role": "user", "content": "start"}, {"role": "assistant", "content": "reply 0"},
               {"role": "user", "content": "next"}]
    second = client.post("/v1/chat/completions", json={"messages": history})
    assert second.headers["x-session-id"] == sid
    # Only the new message was added: the checkpoint holds 4 messages, not 5.
    runtime = client.app.state.runtime
    client.portal.call(runtime.turns.drain)  # the run goes on (summarise) after the reply
    state = client.portal.call(runtime.graph.aget_state, {"configurable": {"thread_id": sid}})
    contents = [m.content for m in state.values["messages"]]
    assert contents[:3] == ["start", "reply 0", "next"] and len(contents) == 4  # (reply 1 named the session)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": 5}]}, "content"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "user message"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "image_url"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 9}, "temperature"),
    ],
)
def test_bad_requests_get_400_in_the_openai_shape(client, body, needle):
    r = client.post("/v1/chat/completions", json=body, headers={"X-Session-Id": "bad"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert needle in error["message"]
    assert error["type"] == "invalid_request_error"


def test_invalid_json_and_session_id(client):
    r = client.post("/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()
    r = chat(client, headers={"X-Session-Id": "../../etc/passwd"})
    assert r.status_code == 400 and "session id" in r.json()["error"]["message"]


def test_health_reports_dependencies(client):
    chat(client)
    body = client.get("/health").json()
    assert body["active_sessions"] == 1
    assert body["dependencies"]["memory_db"] == "ok"
    assert body["dependencies"]["vector_store"] == "ok"
    assert body["dependencies"]["inference"]["status"].startswith("unreachable")
    assert body["status"] == "degraded"


def test_unreachable_inference_node_gives_502_naming_the_url_and_leaves_the_session_clean(settings):
    with TestClient(create_app(settings)) as client:  # the real ChatOpenAI, pointed at a closed port
        r = chat(client, headers={"X-Session-Id": "down"})
        assert r.status_code == 502
        message = r.json()["error"]["message"]
        assert "http://127.0.0.1:9/v1" in message and "INFERENCE_BASE_URL" in message
        runtime = client.app.state.runtime
        state = client.portal.call(runtime.graph.aget_state, {"configurable": {"thread_id": "down"}})
        assert state.values.get("messages", []) == [] and not state.next
        assert runtime.deps.episodes.count() == 0
        r = client.get("/v1/models")
        assert r.status_code == 502 and "INFERENCE_BASE_URL" in r.json()["error"]["message"]


def test_the_rolling_summary_runs_after_the_reply_in_its_own_run(settings):
    settings.summary_trigger_messages, settings.recent_messages = 4, 2
    model = FakeChatModel([contract(f"reply {i}") for i in range(40)])
    with TestClient(create_app(settings, chat_model=model)) as client:
        for i in range(4):
            assert chat(client, f"message {i}", headers={"X-Session-Id": "sum-1"}).status_code == 200
        session = client.get("/sessions/sum-1").json()  # waits for the session's runs to settle
        assert session["summary"]
        assert session["messageCount"] < 8  # older messages were folded into the summary
        assert client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "again"}]},
                           headers={"X-Session-Id": "sum-1"}).status_code == 200
        # The turn's own prompt (a summary due after it may call the model again in the background).
        turn_prompt = next(p for p in reversed(model.prompts) if "again" in "\n".join(str(m.content) for m in p))
        assert session["summary"] in "\n".join(str(m.content) for m in turn_prompt)
