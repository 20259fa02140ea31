"""`orchestrator chat` and `orchestrator e2e` against a running service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.servers import ServiceProcess, free_port

pytestmark = pytest.mark.integration
CLI = [str(Path(sys.executable).with_name("orchestrator"))]


@pytest.fixture(scope="module")
def service(backend, tmp_path_factory):
    with ServiceProcess(tmp_path_factory.mktemp("cli"), {"INFERENCE_BASE_URL": backend.base_url}) as svc:
        yield svc


def test_e2e_passes_against_a_working_service(service):
    done = subprocess.run([*CLI, "e2e", "--base-url", service.base_url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS memory updated" in done.stdout and done.stdout.rstrip().endswith("OK")


def test_e2e_fails_while_health_says_the_inference_node_is_unreachable(backend, tmp_path):
    # Turns still pass, through the fallback; the configured node is down all the same.
    env = {"INFERENCE_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", "INFERENCE_FALLBACK_URLS": backend.base_url,
           "INFERENCE_MAX_RETRIES": "0"}
    with ServiceProcess(tmp_path, env) as svc:
        done = subprocess.run([*CLI, "e2e", "--base-url", svc.base_url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    health = next(line for line in done.stdout.splitlines() if line.startswith(("PASS health", "FAIL health")))
    assert health.startswith("FAIL health") and "unreachable" in health
    assert "PASS non-streaming reply" in done.stdout  # the turns themselves worked


def test_e2e_fails_when_nothing_listens():
    done = subprocess.run([*CLI, "e2e", "--base-url", "http://127.0.0.1:9"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "FAIL" in done.stdout


@pytest.mark.parametrize("stream", [False, True])
def test_chat_repl_streams_replies_and_shows_tool_calls(service, stream):
    args = [*CLI, "chat", "--base-url", service.base_url, "--session", f"repl-{stream}"] + (["--stream"] * stream)
    done = subprocess.run(args, input="hello there\nplease read the file\n/quit\n", capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "You said: hello there" in done.stdout
    assert '[tool call] read_file({"path": "src/main.py"})' in done.stdout
