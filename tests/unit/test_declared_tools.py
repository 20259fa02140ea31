"""Tool calls are held to the tools the client declared: undeclared names and arguments the declared schema
refuses never reach the client; what was dropped is recorded; the node's schema lists the declared names."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from graph.declared_tools import check_calls
from server.app import create_app
from tests.fake_backend import FakeBackend, default_responder

GET_WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}


def call(name: str, arguments: dict) -> dict:
    return {"id": f"call_{name}", "name": name, "arguments": arguments}


def weather_node(body: dict) -> str:
    """A node that calls tools nobody declared, as the bundled model did."""
    last = str(body["messages"][-1]["content"])
    if "undeclared" in last:
        calls = [call("weather-today", {"city": "Oslo"}), call("climate", {})]
    elif "bad arguments" in last:
        calls = [call("get_weather", {"city": 5}), call("get_weather", {"town": "Oslo"})]
    elif "mixed" in last:
        calls = [call("climate", {}), call("get_weather", {"city": "Oslo"})]
    else:
        return default_responder(body)
    return json.dumps({"assistant_response": "Let me check the weather.", "tool_calls": calls})


@pytest.fixture
def node_and_client(settings):
    with FakeBackend(weather_node) as node:
        settings.inference_base_url = node.base_url
        settings.inference_response_format = "schema"
        with TestClient(create_app(settings)) as client:
            yield node, client


def ask(client, session: str, text: str, tools: list | None = None, stream: bool = False):
    body = {"messages": [{"role": "user", "content": text}], **({"tools": tools} if tools else {})}
    return client.post("/v1/chat/completions", json={**body, "stream": stream}, headers={"X-Session-Id": session})


def test_calls_to_undeclared_tools_are_dropped_and_the_text_stands(node_and_client, caplog):
    node, client = node_and_client
    with caplog.at_level(logging.INFO, logger="orchestrator.access"):
        r = ask(client, "undeclared", "what is the weather? (undeclared)", [GET_WEATHER])
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == "Let me check the weather."
    assert "tool_calls" not in choice["message"]
    stored = client.get("/sessions/undeclared/messages").json()["messages"][-1]
    assert "toolCalls" not in stored
    assert [d["name"] for d in stored["toolCallsDropped"]] == ["weather-today", "climate"]
    assert {d["reason"] for d in stored["toolCallsDropped"]} == {"not a declared tool"}
    lines = [r.fields for r in caplog.records if getattr(r, "fields", {}).get("route") == "/v1/chat/completions"]
    assert [d["name"] for d in lines[-1]["tool_calls_dropped"]] == ["weather-today", "climate"]


def test_calls_whose_arguments_break_the_declared_schema_are_dropped(node_and_client):
    _, client = node_and_client
    r = ask(client, "bad-args", "weather with bad arguments", [GET_WEATHER])
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    dropped = client.get("/sessions/bad-args/messages").json()["messages"][-1]["toolCallsDropped"]
    assert [d["name"] for d in dropped] == ["get_weather", "get_weather"]
    assert "is not of type 'string'" in dropped[0]["reason"] and "city" in dropped[0]["reason"]
    assert "'city' is a required property" in dropped[1]["reason"]


def test_declared_calls_are_kept_beside_dropped_ones_in_a_stream(node_and_client):
    _, client = node_and_client
    with client.stream("POST", "/v1/chat/completions", headers={"X-Session-Id": "mixed"}, json={
            "messages": [{"role": "user", "content": "mixed weather"}], "tools": [GET_WEATHER], "stream": True}) as r:
        chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    calls = [c for ch in chunks for choice in ch["choices"] for c in choice["delta"].get("tool_calls") or []]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    assert [ch["choices"][0]["finish_reason"] for ch in chunks if ch["choices"]][-1] == "tool_calls"


def test_without_declared_tools_calls_are_not_checked(node_and_client):
    _, client = node_and_client
    r = ask(client, "no-tools", "please read the file")
    assert r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "read_file"


def test_the_schema_sent_to_the_node_lists_only_the_declared_names(node_and_client):
    node, client = node_and_client
    turns = lambda: [b for b in node.requests if b["messages"][0]["role"] == "system"]  # noqa: E731
    ask(client, "enum", "hello", [GET_WEATHER])
    schema = turns()[-1]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["tool_calls"]["items"]["properties"]["name"]["enum"] == ["get_weather"]
    ask(client, "enum-none", "hello")
    schema = turns()[-1]["response_format"]["json_schema"]["schema"]
    assert "enum" not in schema["properties"]["tool_calls"]["items"]["properties"]["name"]


def test_a_schema_that_is_not_json_schema_checks_nothing():
    tools = [{"type": "function", "function": {"name": "odd", "parameters": {"type": "no-such-type"}}}]
    kept, dropped = check_calls([{"id": "1", "name": "odd", "args": {"x": 1}}], tools)
    assert [c["name"] for c in kept] == ["odd"] and dropped == []
