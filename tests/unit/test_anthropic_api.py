"""`/v1/messages` through the real app (lifespan running) with a fake chat model, driven by the official
`anthropic` SDK over the test client, and the request translation on its own."""

from __future__ import annotations

import json

import anthropic
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.errors import ApiError
from server.protocols.anthropic.schemas import MessagesRequest, project_from_directory, working_directory
from tests import claude_code_shape
from tests.fakes import FakeChatModel, contract

READ_CALL = {"id": "call_7", "name": "Read", "arguments": {"file_path": "/repo/app.py"}}
# Every test here that takes `settings` runs on the embedded profile and on Postgres + the Chroma server.
STORAGE_PROFILES = True


@pytest.fixture
def client(settings):
    replies = [contract("Reading it.", [READ_CALL]), contract("It loads config.toml.")]
    replies += [contract(f"reply {i}") for i in range(20)]
    model = FakeChatModel(replies)
    with TestClient(create_app(settings, chat_model=model)) as c:
        c.model = model
        yield c


def sdk(client, session: str | None = "cc-1", **headers) -> anthropic.Anthropic:
    extra = {"X-Claude-Code-Session-Id": session} if session else {}
    return anthropic.Anthropic(base_url=str(client.base_url), api_key="unused", http_client=client, max_retries=0,
                               default_headers={**extra, **headers})


def prompt_of(client, index: int = -1) -> str:
    return "\n".join(str(m.content) for m in client.model.prompts[index])


def test_tool_use_round_trip_and_memory(client):
    client.post("/sessions", json={"id": "cc-1", "name": "named"})  # no naming call takes a scripted reply
    api = sdk(client)
    tools = [{"name": "Read", "description": "Read a file.", "input_schema": {
        "type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}]
    history = [{"role": "user", "content": "read app.py please"}]
    first = api.messages.create(model="claude-sonnet-4-5", max_tokens=512, messages=history, tools=tools)
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use"]
    call = first.content[1]
    assert (call.id, call.name, call.input) == ("call_7", "Read", {"file_path": "/repo/app.py"})
    assert first.model == "claude-sonnet-4-5" and first.usage.input_tokens > 0
    history += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_7",
                                              "content": [{"type": "text", "text": "load('config.toml')"}]}]}]
    second = api.messages.create(model="claude-sonnet-4-5", max_tokens=512, messages=history, tools=tools)
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "It loads config.toml."
    assert "load('config.toml')" in prompt_of(client) and "read app.py please" in prompt_of(client)
    # A third call that resends the whole history adds only its new message to the session.
    history += [{"role": "assistant", "content": "It loads config.toml."},
                {"role": "user", "content": "thanks"}]
    api.messages.create(model="claude-sonnet-4-5", max_tokens=512, messages=history, tools=tools)
    messages = client.get("/sessions/cc-1/messages").json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "user", "assistant"]


def sse_events(client, body: dict, headers: dict) -> list[tuple[str, dict]]:
    with client.stream("POST", "/v1/messages", json={**body, "stream": True}, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = list(r.iter_lines())
    names = [line[7:] for line in lines if line.startswith("event: ")]
    datas = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert [d["type"] for d in datas] == names
    return list(zip(names, datas, strict=True))


def test_stream_event_sequence(client):
    events = sse_events(client, {"model": "m", "max_tokens": 99, "messages": [{"role": "user", "content": "x"}]},
                        {"X-Session-Id": "cc-seq"})
    names = [n for n, _ in events if n != "ping"]
    deltas = names.count("content_block_delta") - 1  # the tool input is one delta, the text the rest
    assert names == ["message_start", "content_block_start", *["content_block_delta"] * deltas,
                     "content_block_stop", "content_block_start", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    data = [d for n, d in events if n != "ping"]
    assert data[1]["content_block"] == {"type": "text", "text": ""}
    assert "".join(d["delta"]["text"] for d in data[2 : 2 + deltas]) == "Reading it."
    tool_start, tool_delta = data[3 + deltas], data[4 + deltas]
    assert tool_start["content_block"] == {"type": "tool_use", "id": "call_7", "name": "Read", "input": {}}
    assert json.loads(tool_delta["delta"]["partial_json"]) == {"file_path": "/repo/app.py"}
    assert data[-2]["delta"]["stop_reason"] == "tool_use" and data[-2]["usage"]["input_tokens"] > 0
    assert "ping" in [n for n, _ in events]


def test_sdk_stream_final_message(client):
    with sdk(client, "cc-stream").messages.stream(model="claude-haiku-4-5", max_tokens=256,
                                                  messages=[{"role": "user", "content": "read app.py"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Reading it."
    assert final.stop_reason == "tool_use" and final.model == "claude-haiku-4-5"
    assert final.content[0].text == "Reading it."
    assert (final.content[1].name, final.content[1].input) == ("Read", {"file_path": "/repo/app.py"})


def test_errors_in_anthropic_shape(client):
    api = sdk(client, "cc-err")
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    with pytest.raises(anthropic.BadRequestError) as info:
        api.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": [image]}])
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert "text only" in info.value.body["error"]["message"]
    r = client.post("/v1/messages", json={"model": "m", "messages": []})
    assert r.status_code == 400 and r.json()["type"] == "error"
    assert "messages" in r.json()["error"]["message"]
    r = client.post("/v1/messages", json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
    server_tool = {"type": "web_search_20250305", "name": "web_search"}
    r = client.post("/v1/messages", json={"model": "m", "max_tokens": 5, "tools": [server_tool],
                                          "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and "server tools" in r.json()["error"]["message"]
    # The OpenAI routes keep their own shape.
    assert "type" not in client.post("/v1/chat/completions", json={"messages": []}).json()


def test_failed_inference_is_an_anthropic_error_and_the_session_is_unchanged(settings):
    with TestClient(create_app(settings)) as c:  # the node at 127.0.0.1:9 refuses connections
        with pytest.raises(anthropic.APIStatusError) as info:
            sdk(c, "cc-down").messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        assert info.value.status_code == 502
        assert info.value.body["error"]["type"] == "api_error"
        assert c.get("/sessions/cc-down/messages").json()["messages"] == []


def test_claude_code_request_is_accepted_trimmed_and_scoped_to_its_directory(client):
    body, headers = claude_code_shape.request(cwd="/home/dev/webapp", user_text="Where is the config loaded?")
    r = client.post("/v1/messages?beta=true", json=body, headers=headers)
    assert r.status_code == 200, r.text
    sent = prompt_of(client, 0)
    assert "Where is the config loaded?" in sent
    assert "Working directory: /home/dev/webapp" in sent  # the environment block survives trimming
    assert all(f"- {t['name']}:" in sent for t in body["tools"])  # every tool is still offered
    offered = sum(len(t["description"]) for t in body["tools"]) + sum(len(b["text"]) for b in body["system"])
    assert len(sent) < offered / 4
    session = client.get(f"/sessions/{headers['X-Claude-Code-Session-Id']}").json()
    assert session["projectId"] == project_from_directory("/home/dev/webapp")
    counted = client.post("/v1/messages/count_tokens", json=body, headers=headers).json()["input_tokens"]
    assert 0 < counted <= 8192 - 1024


def test_count_tokens_counts_memory_without_storing_anything(client):
    sdk(client, "cc-count").messages.create(model="m", max_tokens=64,
                                            messages=[{"role": "user", "content": "my cat is Tom"}])
    before = client.get("/sessions/cc-count/messages").json()["messages"]
    question = [{"role": "user", "content": "what is my cat called?"}]
    # The same question, in the scope that remembers the cat and in one that remembers nothing.
    remembering = sdk(client, "cc-count-2").messages.count_tokens(model="m", messages=question).input_tokens
    forgetful = sdk(client, "cc-count-3", **{"X-Project-Id": "elsewhere"}).messages.count_tokens(
        model="m", messages=question).input_tokens
    assert remembering > forgetful > 0
    assert client.get("/sessions/cc-count/messages").json()["messages"] == before
    assert client.get("/sessions/cc-count-2").status_code == 404  # nothing was created
    assert client.get("/projects/elsewhere").status_code == 404


def test_translation_of_blocks_and_tool_choice():
    request = MessagesRequest.model_validate({
        "model": "m", "max_tokens": 5,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Working directory: /r/x"}],
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                              {"type": "tool_use", "id": "t1", "name": "Bash",
                                               "input": {"command": "ls"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "boom",
                                          "is_error": True}, {"type": "text", "text": "and?"}]}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}},
                  {"name": "Read", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "Read"}, "stop_sequences": ["END"], "temperature": 0.5})
    kinds = [m.type for m in request.conversation()]
    assert kinds == ["human", "ai", "tool", "human"]
    assert request.conversation()[2].content == "Error: boom"
    assert [t["function"]["name"] for t in request.tool_dicts()] == ["Read"]
    assert "Read" in request.tool_instruction()
    assert request.configurable(None) == {"max_tokens": 5, "temperature": 0.5, "stop": ["END"]}
    assert working_directory(request.system_text()) == "/r/x"
    with pytest.raises(ApiError):
        MessagesRequest.model_validate({**request.model_dump(), "tool_choice": {"type": "tool", "name": "Nope"}}
                                       ).tool_dicts()


@pytest.mark.parametrize("mode", ["drop", "stall"])
def test_broken_or_stalled_node_ends_the_stream_with_an_error_event(settings, mode, monkeypatch):
    import threading
    from http.server import ThreadingHTTPServer

    import server.protocols.anthropic.routes as messages_route
    from tests.unit.test_reliability import _Misbehaving

    monkeypatch.setattr(messages_route, "PING_SECONDS", 0.2)
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Misbehaving,), {"mode": mode}))
    server.daemon_threads, server.block_on_close = True, False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.inference_base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        settings.inference_first_token_timeout_seconds = 1.0
        with TestClient(create_app(settings)) as c:
            events = sse_events(c, {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "x"}]},
                                {"X-Session-Id": f"cc-{mode}"})
            names = [n for n, _ in events]
            assert names[0] == "message_start" and names[-1] == "error" and "message_stop" not in names
            assert events[-1][1]["error"]["type"] == "api_error" and events[-1][1]["error"]["message"]
            if mode == "stall":  # a second of silence from the node: pings keep the connection alive
                assert names.count("ping") >= 3
            with pytest.raises(anthropic.APIStatusError):
                with sdk(c, f"cc-{mode}-sdk").messages.stream(
                        model="m", max_tokens=9, messages=[{"role": "user", "content": "x"}]) as stream:
                    stream.get_final_message()
            assert c.get(f"/sessions/cc-{mode}/messages").json()["messages"] == []
    finally:
        server.shutdown()
        server.server_close()


def test_message_length_limit_applies_to_new_messages_only(settings):
    settings.max_message_chars = 200
    long_reply = "y" * 500  # the model may write more than a client may send
    with TestClient(create_app(settings, chat_model=FakeChatModel([contract(long_reply)] * 5))) as c:
        api = sdk(c, "cc-long")
        with pytest.raises(anthropic.BadRequestError) as info:
            api.messages.create(model="m", max_tokens=9, messages=[{"role": "user", "content": "x" * 201}])
        assert "MAX_MESSAGE_CHARS" in info.value.body["error"]["message"]
        assert api.messages.create(model="m", max_tokens=9, messages=[{"role": "user", "content": "hi"}]
                                   ).content[0].text == long_reply
        # The whole history resent, with the long reply the session already holds: only the last one is new.
        history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": long_reply},
                   {"role": "user", "content": "and now?"}]
        assert api.messages.create(model="m", max_tokens=9, messages=history).content[0].text == long_reply


def test_key_scoped_sessions_hold_on_the_messages_routes(settings):
    settings.api_keys, settings.api_key_scoped_sessions = "key-a,key-b", True
    with TestClient(create_app(settings, chat_model=FakeChatModel([contract("ok")] * 5))) as c:
        ask = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "my secret is 42"}]}
        a = anthropic.Anthropic(base_url=str(c.base_url), api_key="key-a", http_client=c, max_retries=0,
                                default_headers={"X-Claude-Code-Session-Id": "shared"})
        b = anthropic.Anthropic(base_url=str(c.base_url), api_key="key-b", http_client=c, max_retries=0,
                                default_headers={"X-Claude-Code-Session-Id": "shared"})
        a.messages.create(**ask)
        with pytest.raises(anthropic.NotFoundError) as info:
            b.messages.create(**ask)
        assert info.value.body["error"]["type"] == "not_found_error"
        with pytest.raises(anthropic.NotFoundError):
            b.messages.count_tokens(model="m", messages=ask["messages"])
        assert a.messages.count_tokens(model="m", messages=ask["messages"]).input_tokens > 0


def test_side_conversations_on_one_session_id_do_not_interleave(client):
    """Claude Code's main loop, a helper call and a sub-agent share one session id; each resends its own
    history. The main conversation stays in the named session, the others get sessions of their own."""
    client.post("/sessions", json={"id": "cc-main", "name": "named"})  # no naming call takes a scripted reply
    main = sdk(client, "cc-main")
    ask = {"model": "m", "max_tokens": 50}
    history = [{"role": "user", "content": "read app.py please"}]
    first = main.messages.create(**ask, messages=history)  # the scripted Read tool call
    title = main.messages.create(**ask, system="Write a 5-word title for this conversation.",
                                 messages=[{"role": "user", "content": "read app.py please"}])
    agent = [{"role": "user", "content": "Sub-agent task: list the tests"}]
    agent_reply = main.messages.create(**ask, system="You are a sub-agent.", messages=agent)
    history += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_7", "content": "x = 1"}]}]
    main.messages.create(**ask, messages=history)
    agent += [{"role": "assistant", "content": agent_reply.content[0].text}, {"role": "user", "content": "more"}]
    main.messages.create(**ask, system="You are a sub-agent.", messages=agent)

    stored = client.get("/sessions/cc-main/messages").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant"]  # the main loop only
    sides = [s for s in client.get("/sessions").json()["sessions"] if s["id"].startswith("cc-main:conv-")]
    assert len(sides) == 2  # the title call and the sub-agent
    lengths = sorted(len(client.get(f"/sessions/{s['id']}/messages").json()["messages"]) for s in sides)
    assert lengths == [2, 4]  # the sub-agent's second call continued its own session
    assert title.content  # answered like any other call
    r = client.post("/v1/messages", headers={"X-Claude-Code-Session-Id": "cc-main"},
                    json={**ask, "messages": [{"role": "user", "content": "quota"}]})
    assert r.headers["x-session-id"].startswith("cc-main:conv-")  # says where the turn went
