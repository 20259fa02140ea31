"""`langgraph dev` (in-memory runtime) serving the graph from langgraph.json, driven by `langgraph_sdk`."""

from __future__ import annotations

import pytest
from langgraph_sdk import get_client

from tests.fake_backend import FakeBackend
from tests.integration.servers import DevServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("langgraph-dev")
    with FakeBackend() as backend, DevServer(data, {"INFERENCE_BASE_URL": backend.base_url}) as dev:
        yield dev.url, backend, data
    assert dev.proc.poll() is not None  # stopped


@pytest.mark.anyio
async def test_wait_and_stream_tokens(dev_server):
    url, backend, data = dev_server
    client = get_client(url=url)
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "agent",
                                    input={"messages": [{"role": "human", "content": "I use neovim."}]})
    assert result["messages"][-1]["type"] == "ai"
    assert result["messages"][-1]["content"] == "You said: I use neovim."

    tokens = []
    async for part in client.runs.stream(thread["thread_id"], "agent", stream_mode="messages-tuple",
                                         input={"messages": [{"role": "human", "content": "Which editor?"}]}):
        if part.event == "messages":
            message, _meta = part.data
            if message["type"] == "AIMessageChunk" and message["content"]:
                tokens.append(message["content"])
    assert len(tokens) > 2
    assert "".join(tokens) == "You said: Which editor?"
    assert "I use neovim." in backend.turn_prompts()[-1]  # memory: the first turn of the thread
    assert (data / "data" / "memory.db").exists()
