"""The real server on 127.0.0.1, driven by the official `openai` SDK, in front of a scripted inference node."""

from __future__ import annotations

import json
import sqlite3

import httpx
import openai
import pytest

from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(backend, tmp_path_factory, storage_env):
    data = tmp_path_factory.mktemp("service")
    with ServiceProcess(data, {"INFERENCE_BASE_URL": backend.base_url, "INFERENCE_MODEL": "fake-model",
                               **storage_env}) as svc:
        svc.data = data
        yield svc


def client_for(service, session: str | None = None) -> openai.OpenAI:
    headers = {"X-Session-Id": session} if session else {}
    return openai.OpenAI(base_url=service.base_url + "/v1", api_key="unused", default_headers=headers, max_retries=0)


def test_non_streaming(service):
    reply = client_for(service, "sdk-plain").chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hello there"}]
    )
    assert reply.choices[0].message.content == "You said: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 0


def test_streaming_yields_response_text_token_by_token(service):
    stream = client_for(service, "sdk-stream").chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "stream this please"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 2  # really streamed, not one block
    assert "".join(pieces) == "You said: stream this please"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_tool_call_round_trip(service, backend):
    client = client_for(service, "sdk-tools")
    tools = [{"type": "function", "function": {"name": "read_file", "description": "Read a file from disk",
                                               "parameters": {"type": "object",
                                                              "properties": {"path": {"type": "string"}}}}}]
    messages = [{"role": "user", "content": "please read the file src/main.py"}]
    first = client.chat.completions.create(model="fake-model", messages=messages, tools=tools)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "read_file" and json.loads(call.function.arguments) == {"path": "src/main.py"}
    assert "read_file: Read a file from disk" in backend.turn_prompts()[-1]
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "print('hi')"}]
    second = client.chat.completions.create(model="fake-model", messages=messages, tools=tools)
    assert second.choices[0].message.content == "The tool said: print('hi')"


def test_streamed_tool_calls(service):
    stream = client_for(service, "sdk-tools-stream").chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "read the file now"}], stream=True)
    chunks = list(stream)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "read_file"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert "Reading it." == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_fact_from_turn_one_reaches_the_prompt_of_turn_three(service, backend):
    client = client_for(service, "sdk-memory")
    for text in ["My favourite colour is teal.", "I live in Lisbon.", "What do you know about me?"]:
        client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": text}])
    assert "favourite colour is teal" in backend.turn_prompts()[-1]
    assert "Lisbon" in backend.turn_prompts()[-1]


def test_recall_across_sessions(service, backend):
    client_for(service, "sdk-cross-a").chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "The staging database port is 6543."}])
    client_for(service, "sdk-cross-b").chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "Which port does the staging database use?"}])
    last = backend.turn_prompts()[-1]
    assert "relevant memories from earlier conversations" in last
    assert "staging database port is 6543" in last


def test_models_and_health(service):
    models = client_for(service).models.list()
    assert [m.id for m in models.data] == ["fake-model"]
    health = httpx.get(service.base_url + "/health").json()
    assert health["status"] == "ok" and health["dependencies"]["inference"]["status"] == "ok"


def test_errors_reach_the_sdk_as_typed_exceptions(service):
    with pytest.raises(openai.BadRequestError) as info:
        client_for(service, "sdk-err").chat.completions.create(model="fake-model", messages=[])
    assert "messages" in info.value.message


def test_restart_keeps_the_conversation(backend, tmp_path):
    env = {"INFERENCE_BASE_URL": backend.base_url}
    with ServiceProcess(tmp_path, env) as svc:
        client_for(svc, "restart").chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "The release codename is Bluebird."}])
    with ServiceProcess(tmp_path, env) as svc:
        client_for(svc, "restart").chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "What is the codename?"}])
    prompt = backend.turn_prompts()[-1]
    assert "The release codename is Bluebird." in prompt  # from the checkpoint, as a recent turn
    with sqlite3.connect(tmp_path / "data" / "memory.db") as db:
        assert db.execute("SELECT COUNT(*) FROM episodes WHERE session_id = 'restart'").fetchone()[0] == 2
        assert db.execute("SELECT COUNT(*) FROM episodes WHERE indexed = 0").fetchone()[0] == 0
