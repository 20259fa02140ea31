"""`/agent` through the official LangServe client, against the real server and a scripted inference node."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest
from langserve import RemoteRunnable

from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tmp_path_factory.mktemp("langserve")


@pytest.fixture(scope="module")
def service(backend, data):
    with ServiceProcess(data, {"INFERENCE_BASE_URL": backend.base_url}) as svc:
        yield svc


def agent(service) -> RemoteRunnable:
    return RemoteRunnable(service.base_url + "/agent/")


def human(text: str) -> dict:
    return {"messages": [{"type": "human", "content": text}]}


def thread(tid: str) -> dict:
    return {"configurable": {"thread_id": tid}}


def test_invoke_returns_the_answer_text(service):
    out = agent(service).invoke(human("hello agent"), config=thread("ls-invoke"))
    assert out.content == "You said: hello agent"


def test_client_thread_id_is_kept_so_two_invokes_share_memory(service, backend):
    runnable = agent(service)
    runnable.invoke(human("My dog is called Pixel."), config=thread("ls-memory"))
    runnable.invoke(human("What is my dog called?"), config=thread("ls-memory"))
    assert "My dog is called Pixel." in backend.turn_prompts()[-1]  # the earlier turn, from the checkpoint


def test_stream_yields_text_chunks_not_contract_json(service):
    chunks = list(agent(service).stream(human("stream me something long"), config=thread("ls-stream")))
    assert len(chunks) > 2
    text = "".join(c.content for c in chunks)
    assert text == "You said: stream me something long"
    assert "assistant_response" not in text


@pytest.mark.anyio
async def test_astream_events_carries_response_tokens(service):
    model_tokens, agent_chunks = [], []
    runnable = agent(service)
    async for event in runnable.astream_events(human("events please"), config=thread("ls-events"), version="v2"):
        if event["event"] == "on_chat_model_stream":
            model_tokens.append(event["data"]["chunk"].content)
        elif event["event"] == "on_chain_stream" and event["name"] == "/agent":
            agent_chunks.append(event["data"]["chunk"].content)
    await runnable.async_client.aclose()
    assert len([t for t in model_tokens if t]) > 2  # the model's own stream: response text, token by token
    assert "".join(model_tokens) == "You said: events please"
    assert "".join(agent_chunks) == "You said: events please"


def test_tool_calls_come_back_on_the_message(service):
    out = agent(service).invoke(human("please read the file"), config=thread("ls-tools"))
    assert out.tool_calls[0]["name"] == "read_file"
    assert out.tool_calls[0]["args"] == {"path": "src/main.py"}


def test_a_request_without_session_still_works(service):
    out = agent(service).invoke(human("no session here"))
    assert out.content == "You said: no session here"


def test_headers_name_the_session_and_the_conversation_is_shared_with_the_openai_route(service, backend):
    openai.OpenAI(base_url=service.base_url + "/v1", api_key="x", default_headers={"X-Session-Id": "shared-1"}
                  ).chat.completions.create(model="m", messages=[{"role": "user", "content": "The moon is cheese."}])
    r = httpx.post(service.base_url + "/agent/invoke", json={"input": human("What is the moon?")},
                   headers={"X-Session-Id": "shared-1"}, timeout=30)
    assert r.status_code == 200
    assert "The moon is cheese." in backend.turn_prompts()[-1]


def test_playground_and_its_assets(service):
    page = httpx.get(service.base_url + "/agent/playground/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page.text)
    assert assets
    for asset in assets:
        url = asset if asset.startswith("http") else service.base_url + "/agent/playground/" + asset.split(
            "/playground/")[-1].lstrip("./")
        assert httpx.get(url, timeout=10).status_code == 200, url


def test_schemas(service):
    schema = httpx.get(service.base_url + "/agent/input_schema", timeout=10).json()
    assert "messages" in schema["properties"]
    assert httpx.get(service.base_url + "/agent/config_schema", timeout=10).status_code == 200


def test_memory_survives_a_restart(backend, tmp_path):
    with ServiceProcess(tmp_path, {"INFERENCE_BASE_URL": backend.base_url}) as svc:
        agent(svc).invoke(human("Our standup is at 9:30."), config=thread("ls-restart"))
    with ServiceProcess(tmp_path, {"INFERENCE_BASE_URL": backend.base_url}) as svc:
        agent(svc).invoke(human("When is standup?"), config=thread("ls-restart"))
    assert "Our standup is at 9:30." in backend.turn_prompts()[-1]


@pytest.mark.anyio
async def test_stream_log_and_the_config_hash_routes_the_chat_playground_uses(service):
    runnable = agent(service)
    patches = [patch async for patch in runnable.astream_log(human("log me"), config=thread("ls-log"))]
    await runnable.async_client.aclose()
    log = sum(patches[1:], patches[0])
    assert log.state["final_output"].content == "You said: log me"
    # The playground reads its schemas under /c/{config_hash}/ ("N4XyA": its empty config) and offers its
    # chat only for a one-key list-of-messages input and an output whose union admits `"type": "ai"`.
    input_schema = httpx.get(service.base_url + "/agent/c/N4XyA/input_schema", timeout=10).json()
    assert list(input_schema["properties"]) == ["messages"]
    assert input_schema["properties"]["messages"]["type"] == "array"
    output_schema = httpx.get(service.base_url + "/agent/c/N4XyA/output_schema", timeout=10).json()
    members = [output_schema["$defs"][m["$ref"].rsplit("/", 1)[-1]] for m in output_schema["anyOf"]]
    assert ["ai"] in [m["properties"]["type"].get("enum") for m in members]
    r = httpx.post(service.base_url + "/agent/c/N4XyA/stream_log", json={"input": human("via the hash")}, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert "You said: via the hash" in r.text


def test_agent_still_takes_system_and_tools_left_out_of_its_schema(service, backend):
    body = {"input": {**human("with a system prompt"), "system": "Answer like a pirate.",
                      "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]}}
    r = httpx.post(service.base_url + "/agent/invoke", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert "Answer like a pirate." in backend.turn_prompts()[-1]
    assert any("get_weather" in json.dumps(b) for b in backend.requests)
