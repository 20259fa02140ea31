"""With no INFERENCE_BASE_URL the service runs the bundled model (SmolLM2-135M via llama.cpp) itself."""

from __future__ import annotations

import os
import signal
import time

import httpx
import openai
import pytest

from tests.integration.servers import ServiceProcess, free_port

pytestmark = pytest.mark.integration
EMBEDDED = {"INFERENCE_BASE_URL": "", "LOCAL_MAX_TOKENS": "96", "LOCAL_CONTEXT_TOKENS": "2048"}


def gone(pid: int, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # reap it if it is our grandchild turned zombie under us (it is not, but be safe)
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    return False


def test_the_bundled_model_answers_remembers_and_leaves_no_process(tmp_path):
    port = free_port()  # configured the way `PORT=... make run` does: the node must not take it too
    with ServiceProcess(tmp_path, {**EMBEDDED, "PORT": str(port), "HOST": "127.0.0.1"}, port=port).start(
            timeout=240) as svc:
        inference = httpx.get(svc.base_url + "/health", timeout=10).json()["dependencies"]["inference"]
        assert inference["embedded"] is True and inference["status"] == "ok"
        assert inference["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
        node_pid = inference["pid"]
        client = openai.OpenAI(base_url=svc.base_url + "/v1", api_key="unused", max_retries=0, timeout=300,
                               default_headers={"X-Session-Id": "tiny"})
        first = client.chat.completions.create(model="local-model",
                                               messages=[{"role": "user", "content": "Say hello to Ada."}])
        assert first.choices[0].message.content.strip()
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="local-model", stream=True, messages=[{"role": "user", "content": "Name a colour."}])
            if c.choices)
        assert streamed.strip()
        history = httpx.get(svc.base_url + "/sessions/tiny/messages", timeout=60).json()["messages"]
        replies = [m for m in history if m["role"] == "assistant"]
        assert len(replies) == 2
        assert all(m["contract"] != "fallback" for m in replies)  # constrained to the JSON contract
        assert httpx.get(svc.base_url + "/sessions/tiny", timeout=10).json()["episodeCount"] == 2
    assert gone(node_pid)  # stopped with the service

    svc = ServiceProcess(tmp_path, EMBEDDED).start(timeout=240)
    node_pid = httpx.get(svc.base_url + "/health", timeout=10).json()["dependencies"]["inference"]["pid"]
    svc.proc.send_signal(signal.SIGKILL)  # no shutdown code runs
    svc.proc.wait()
    assert gone(node_pid)  # no orphan: the node dies with its parent
