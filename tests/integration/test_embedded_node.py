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


def dead(pid: int) -> bool:
    """Whether `pid` has ended (a zombie its parent has not reaped yet counts)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def node_info(svc: ServiceProcess) -> dict:
    return httpx.get(svc.base_url + "/health", timeout=10).json()["dependencies"]["inference"]


def test_claude_codes_max_tokens_answers_and_a_killed_node_is_restarted(tmp_path):
    with ServiceProcess(tmp_path, EMBEDDED).start(timeout=240) as svc:
        # Claude Code sends max_tokens 32000: the contract's grammar used to be one llama.cpp refused (a crash).
        r = httpx.post(svc.base_url + "/v1/messages", headers={"X-Session-Id": "claude"}, timeout=600,
                       json={"model": "local-model", "max_tokens": 32000,
                             "messages": [{"role": "user", "content": "Say hello."}]})
        assert r.status_code == 200, r.text
        assert r.json()["content"][0]["text"].strip()

        pid = node_info(svc)["pid"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not dead(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        # During the gap a request is told what happened and where the node's log is.
        r = httpx.post(svc.base_url + "/v1/chat/completions", headers={"X-Session-Id": "gap"}, timeout=120,
                       json={"messages": [{"role": "user", "content": "Are you there?"}]})
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "inference_node_down" and int(r.headers["retry-after"]) >= 1
        assert "SIGKILL" in error["message"] and "inference-node.log" in error["message"]
        assert httpx.get(svc.base_url + "/sessions/gap/messages", timeout=10).json()["messages"] == []
        models = httpx.get(svc.base_url + "/v1/models", timeout=10)
        assert models.status_code == 503 and models.json()["error"]["code"] == "inference_node_down"

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            info = node_info(svc)
            if info["node"]["state"] == "running" and info["status"] in ("ok", "busy"):
                break
            assert info["node"]["last_exit"] == "was killed by SIGKILL"
            time.sleep(0.5)
        assert info["node"]["state"] == "running" and info["node"]["restarts"] == 1 and info["pid"] != pid
        assert "orchestrator_inference_node_restarts 1.0" in httpx.get(svc.base_url + "/metrics", timeout=10).text
        client = openai.OpenAI(base_url=svc.base_url + "/v1", api_key="unused", max_retries=0, timeout=300,
                               default_headers={"X-Session-Id": "after"})
        reply = client.chat.completions.create(model="local-model",
                                               messages=[{"role": "user", "content": "Say hello to Ada."}])
        assert reply.choices[0].message.content.strip()
    assert gone(info["pid"])  # the restarted node stops with the service too
