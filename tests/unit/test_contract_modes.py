"""How the contract is enforced towards the node, and replies cut off by the token limit."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.fake_backend import FakeBackend


def cut_off(body):
    return {"content": '{"assistant_response": "The answer starts here and then', "finish_reason": "length"}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("schema", "json_schema"), ("schema-embedded", "json_object"), ("prompt-only", None), ("auto", None)],
)
def test_response_format_follows_the_setting(settings, mode, expected):
    with FakeBackend() as backend:
        settings.inference_base_url = backend.base_url
        settings.inference_response_format = mode
        settings.max_tokens = 200  # its answer bound (600 chars) is one a grammar can carry: see graph/contract.py
        with TestClient(create_app(settings)) as client:
            r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]},
                            headers={"X-Session-Id": f"mode-{mode}"})
            assert r.status_code == 200
        body = [b for b in backend.requests if b["messages"][0]["role"] == "system"][-1]
        assert body["max_tokens"] == settings.max_tokens  # sent as max_tokens (llama.cpp ignores the other)
        fmt = body.get("response_format")
        if expected is None:
            assert fmt is None
            assert '"assistant_response"' in body["messages"][0]["content"]  # asked for in the prompt
        else:
            assert fmt["type"] == expected
            schema = fmt["json_schema"]["schema"] if expected == "json_schema" else fmt["schema"]
            assert schema["properties"]["assistant_response"]["maxLength"] <= 3 * settings.max_tokens
            assert schema["properties"]["tool_calls"]["maxItems"] == 8


def test_off_mode_asks_for_no_json(settings):
    with FakeBackend(lambda body: "Plain answer.") as backend:
        settings.inference_base_url = backend.base_url
        settings.inference_response_format = "off"
        with TestClient(create_app(settings)) as client:
            r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
            assert r.json()["choices"][0]["message"]["content"] == "Plain answer."
        assert '"assistant_response"' not in backend.requests[0]["messages"][0]["content"]


def test_a_reply_cut_by_the_token_limit_keeps_its_text_and_says_length(settings):
    with FakeBackend(cut_off) as backend:
        settings.inference_base_url = backend.base_url
        with TestClient(create_app(settings)) as client:
            r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]},
                            headers={"X-Session-Id": "cut"})
            choice = r.json()["choices"][0]
            assert choice["finish_reason"] == "length"
            assert choice["message"]["content"] == "The answer starts here and then"
            history = client.get("/sessions/cut/messages").json()["messages"]
            assert history[-1]["contract"] == "truncated"
            with client.stream("POST", "/v1/chat/completions", headers={"X-Session-Id": "cut-s"},
                               json={"stream": True, "messages": [{"role": "user", "content": "hi"}]}) as s:
                chunks = [json.loads(line[6:]) for line in s.iter_lines()
                          if line.startswith("data: {")]
            text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
            assert text == "The answer starts here and then"
            assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_a_schema_violating_reply_still_answers(settings):
    def wrong(body):
        return json.dumps({"answer": "no such key", "tool_calls": "nope"})

    with FakeBackend(wrong) as backend:
        settings.inference_base_url = backend.base_url
        with TestClient(create_app(settings)) as client:
            r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]},
                            headers={"X-Session-Id": "wrong"})
            assert r.status_code == 200
            message = r.json()["choices"][0]["message"]
            assert "tool_calls" not in message  # invalid calls are dropped, never forwarded
            assert message["content"] == json.dumps({"answer": "no such key", "tool_calls": "nope"})
            assert client.get("/sessions/wrong/messages").json()["messages"][-1]["contract"] == "fallback"
