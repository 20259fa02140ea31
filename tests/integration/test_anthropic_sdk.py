"""The real server on 127.0.0.1 driven by the official `anthropic` SDK, as Claude Code would drive it,
in front of a scripted inference node."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from server.protocols.anthropic.schemas import project_from_directory
from tests import claude_code_shape
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration
TOOLS = [{"name": "read_file", "description": "Read a file of the repository.",
          "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}]


@pytest.fixture(scope="module")
def service(backend, tmp_path_factory, storage_env):
    data = tmp_path_factory.mktemp("anthropic")
    env = {"INFERENCE_BASE_URL": backend.base_url, "INFERENCE_MODEL": "fake-model", "API_KEYS": "sk-test",
           **storage_env}
    with ServiceProcess(data, env) as svc:
        yield svc


def claude(service, session: str | None = None, key: str = "sk-test") -> anthropic.Anthropic:
    headers = {"X-Claude-Code-Session-Id": session} if session else {}
    return anthropic.Anthropic(base_url=service.base_url, api_key=key, default_headers=headers, max_retries=0)


def test_create_text(service, backend):
    reply = claude(service, "ant-text").messages.create(
        model="claude-sonnet-4-5", max_tokens=200, system="Be brief.",
        messages=[{"role": "user", "content": "hello there"}])
    assert reply.type == "message" and reply.role == "assistant"
    assert [b.type for b in reply.content] == ["text"]
    assert reply.content[0].text == "You said: hello there"
    assert reply.stop_reason == "end_turn" and reply.model == "claude-sonnet-4-5"
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert backend.requests[-1]["model"] == "fake-model"  # a Claude name means the configured model


def test_tool_use_round_trip(service, backend):
    api = claude(service, "ant-tools")
    history = [{"role": "user", "content": "please read the file"}]
    first = api.messages.create(model="claude-sonnet-4-5", max_tokens=200, tools=TOOLS, messages=history)
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert (call.name, call.input) == ("read_file", {"path": "src/main.py"})
    history += [{"role": "assistant", "content": first.content},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                              "content": "print('hi')"}]}]
    second = api.messages.create(model="claude-sonnet-4-5", max_tokens=200, tools=TOOLS, messages=history)
    assert second.stop_reason == "end_turn"
    assert "print('hi')" in second.content[0].text
    assert "read_file" in backend.turn_prompts()[-1]


def test_stream_matches_the_plain_reply(service):
    api = claude(service)
    ask = {"model": "claude-sonnet-4-5", "max_tokens": 200,
           "messages": [{"role": "user", "content": "stream this sentence please"}]}
    plain = api.messages.create(**ask, extra_headers={"X-Claude-Code-Session-Id": "ant-plain"})
    with api.messages.stream(**ask, extra_headers={"X-Claude-Code-Session-Id": "ant-stream"}) as stream:
        kinds = [event.type for event in stream]
        streamed = stream.get_final_message()
    raw = [k for k in kinds if k not in ("text", "ping")]
    assert raw[0] == "message_start" and raw[1] == "content_block_start"
    assert raw[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("content_block_delta") > 2  # token by token
    drop = {"id": True, "usage": {"input_tokens"}}
    assert streamed.model_dump(exclude=drop) == plain.model_dump(exclude=drop)


def test_memory_across_calls_sharing_a_session(service, backend):
    api = claude(service, "ant-memory")
    api.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                        messages=[{"role": "user", "content": "my build tool is bazel"}])
    api.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                        messages=[{"role": "user", "content": "which build tool do I use?"}])
    assert "my build tool is bazel" in backend.turn_prompts()[-1]


def test_claude_code_request_is_accepted_and_trimmed(service, backend):
    body, headers = claude_code_shape.request(cwd="/home/dev/shop", user_text="please read the file", stream=True)
    headers["x-api-key"] = "sk-test"
    with httpx.stream("POST", service.base_url + "/v1/messages?beta=true", json=body, headers=headers,
                      timeout=60) as r:
        assert r.status_code == 200
        events = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop" and "error" not in events
    sent = backend.turn_prompts()[-1]
    assert "please read the file" in sent and "Working directory: /home/dev/shop" in sent
    offered = len(str(body["system"])) + len(str(body["tools"]))
    assert len(sent) < offered / 3
    session = httpx.get(f"{service.base_url}/sessions/{headers['X-Claude-Code-Session-Id']}",
                        headers={"x-api-key": "sk-test"}).json()
    assert session["projectId"] == project_from_directory("/home/dev/shop")
    counted = claude(service).messages.count_tokens(model="claude-sonnet-4-5", system=body["system"],
                                                    messages=body["messages"], tools=body["tools"])
    assert 0 < counted.input_tokens < 8192


def test_errors_are_anthropic_errors(service):
    with pytest.raises(anthropic.AuthenticationError) as info:
        claude(service, "ant-err", key="wrong").messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert info.value.body == {"type": "error", "error": {"type": "authentication_error",
                                                          "message": info.value.body["error"]["message"]}}
    with pytest.raises(anthropic.BadRequestError) as info:
        claude(service, "ant-err").messages.create(model="m", max_tokens=10, messages=[
            {"role": "user", "content": [{"type": "document", "source": {
                "type": "text", "media_type": "text/plain", "data": "x"}}]}])
    assert info.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError):
        claude(service, "ant-err").messages.create(model="m", max_tokens=10, messages=[
            {"role": "assistant", "content": "I speak first"}])


def test_models_list_for_both_sdks(service):
    listed = claude(service).models.list()
    assert [m.id for m in listed.data] == ["fake-model"]
    assert listed.data[0].display_name == "fake-model"
