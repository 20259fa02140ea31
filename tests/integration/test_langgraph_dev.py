"""`langgraph dev` (in-memory runtime) serving the graph from langgraph.json, driven by `langgraph_sdk`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from tests.fake_backend import FakeBackend
from tests.integration.servers import ROOT, free_port

pytestmark = pytest.mark.integration

OFFLINE = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true", "LANGSMITH_TRACING": "false"}


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("langgraph-dev")
    port = free_port()
    with FakeBackend() as backend:
        env = {**os.environ, **OFFLINE, "INFERENCE_BASE_URL": backend.base_url,
               "DATA_DIR": str(data / "data"), "CHROMA_DIR": str(data / "chroma")}
        cli = Path(sys.executable).with_name("langgraph")
        log_path = data / "langgraph-dev.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([str(cli), "dev", "--port", str(port), "--no-browser", "--no-reload"],
                                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                try:
                    if httpx.get(url + "/ok", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            else:
                pytest.fail("langgraph dev did not start:\n" + log_path.read_text()[-3000:])
            yield url, backend, data
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.poll() is not None


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
