"""`orchestrator chat` in a real terminal (tmux), and what the service stores when a streaming client leaves
mid-reply: nothing of that turn (README, "From the terminal")."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.fake_backend import FakeBackend, default_responder
from tests.integration.servers import ROOT, ServiceProcess, unavailable

pytestmark = pytest.mark.integration
ORCHESTRATOR = str(Path(sys.executable).with_name("orchestrator"))
PASSED_ENV = ("PATH", "HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ANONYMIZED_TELEMETRY", "LANGSMITH_TRACING")
LONG_REPLY = " ".join(f"word{i}" for i in range(120))  # ~840 characters: ~120 pieces, long enough to cut


def slow_responder(body: dict) -> str:
    """A long reply to "tell me a long story", the scripted one otherwise (naming, summaries)."""
    last = str((body.get("messages") or [{}])[-1].get("content"))
    if "long story" in last:
        return json.dumps({"assistant_response": LONG_REPLY, "tool_calls": []})
    return default_responder(body)


@pytest.fixture(scope="module")
def slow_backend():
    with FakeBackend(slow_responder) as node:
        node.chunk_delay = 0.1  # a slow node: each 7-character piece after 100 ms, ~12 s for the long reply
        node.first_delay = 2.0  # and 2 s before the first: "thinking" shows that long
        yield node


@pytest.fixture(scope="module")
def service(slow_backend, tmp_path_factory):
    with ServiceProcess(tmp_path_factory.mktemp("chat-terminal"), {"INFERENCE_BASE_URL": slow_backend.base_url}) as svc:
        yield svc


def wait_for(check, timeout: float = 30.0, interval: float = 0.1):
    """`check()`'s first truthy value; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true after {timeout} s: {check.__doc__ or check}")


def stored(service: ServiceProcess, session: str) -> list[dict]:
    """The session's messages as the API shows them (after any turn on it has finished)."""
    reply = httpx.get(f"{service.base_url}/sessions/{session}/messages", timeout=30)
    return reply.json()["messages"] if reply.status_code == 200 else []


STREAMS = {  # route: the body of a streamed "tell me a long story" on one session
    "/v1/chat/completions": lambda session: {"model": "m", "stream": True,
                                             "messages": [{"role": "user", "content": "tell me a long story"}]},
    "/v1/messages": lambda session: {"model": "m", "max_tokens": 512, "stream": True,
                                     "messages": [{"role": "user", "content": "tell me a long story"}]},
    "/chat/stream": lambda session: {"sessionId": session, "message": "tell me a long story"},
}


@pytest.mark.parametrize("route", list(STREAMS))
def test_a_streaming_client_that_leaves_mid_reply_cancels_the_turn(service, slow_backend, route):
    session = f"leave-{uuid.uuid4().hex[:8]}"
    aborted_before = slow_backend.aborted
    shown = ""
    with httpx.stream("POST", f"{service.base_url}{route}", json=STREAMS[route](session), timeout=60,
                      headers={"X-Session-Id": session}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            shown += line
            if "word3 " in shown:
                break  # the client leaves mid-reply
    assert "word100" not in shown
    # The inference request is closed too: the node stops generating for nobody.
    wait_for(lambda: slow_backend.aborted > aborted_before, timeout=20)
    assert stored(service, session) == []
    info = httpx.get(f"{service.base_url}/sessions/{session}", timeout=30).json()
    assert info["turnCount"] == 0 and info["episodeCount"] == 0
    metrics = httpx.get(f"{service.base_url}/metrics", timeout=30).text
    assert 'orchestrator_turns_total{outcome="cancelled"}' in metrics
    # The session goes on as if the message had never been sent.
    body = {"model": "m", "messages": [{"role": "user", "content": "hello again"}]}
    reply = httpx.post(f"{service.base_url}/v1/chat/completions", json=body, headers={"X-Session-Id": session},
                       timeout=60).json()
    assert reply["choices"][0]["message"]["content"] == "You said: hello again"
    assert [m["content"] for m in stored(service, session)] == ["hello again", "You said: hello again"]
    assert "long story" not in slow_backend.turn_prompts()[-1]


class Tmux:
    """A command in a real terminal (a pty, 120x40) of a tmux server of its own (its own socket: no user's
    tmux server, its environment or its options are involved)."""

    def __init__(self, command: list[str], status: Path) -> None:
        self.name = f"chat-{uuid.uuid4().hex[:8]}"
        self.status = status
        env = [f"{k}={os.environ[k]}" for k in PASSED_ENV if k in os.environ]
        # The command's exit status goes to a file, written by the shell that ran it: tmux's own record of a
        # pane's exit (pane_dead) was sometimes never made — the command had exited, and stayed a zombie tmux
        # did not reap, so `remain-on-exit` never showed it dead. bash, not sh: dash dies of the Ctrl-C its
        # foreground command catches, bash waits for the command and goes on.
        script = f'env "$@"; echo $? > {shlex.quote(str(status))}'
        self.tmux("new-session", "-d", "-s", self.name, "-x", "120", "-y", "40", "-c", str(ROOT),
                  "bash", "-c", script, "bash", "LANG=C.UTF-8", f"PYTHONPATH={ROOT}", *env, *map(str, command))
        # The pane stays after the command exits, so its last screen can be read.
        self.tmux("set-option", "-w", "-t", self.name, "remain-on-exit", "on")

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.name, "-f", "/dev/null", *args], check=True, capture_output=True,
                              text=True).stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name, "-S", "-200")

    def exit_status(self) -> str | None:
        """None while the command runs; then its exit status (128 + N: ended by signal N, 130 for Ctrl-C)."""
        written = self.status.read_text().strip() if self.status.exists() else ""
        return written or None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.name, "kill-server"], capture_output=True)


@pytest.fixture
def tmux_chat(service, tmp_path):
    if shutil.which("tmux") is None:
        unavailable("tmux (`make install` installs it: apt-get install -y tmux)")
    session = f"tty-{uuid.uuid4().hex[:8]}"
    # PORT as the service was configured: `--base-url` is not given, the client finds it.
    env = [f"PORT={service.port}", "HOST=127.0.0.1", f"XDG_STATE_HOME={tmp_path}"]
    term = Tmux([*env, ORCHESTRATOR, "chat", "--session", session], tmp_path / "exit-status")
    try:
        yield term, session
    finally:
        term.close()


def test_chat_in_a_terminal_cancels_a_reply_with_ctrl_c_and_leaves_cleanly(service, tmux_chat):
    term, session = tmux_chat
    wait_for(lambda: term.screen().rstrip().endswith(">"), timeout=60)
    assert f"on http://127.0.0.1:{service.port}" in term.screen()
    term.keys("tell me a long story", "Enter")
    wait_for(lambda: "thinking" in term.screen(), timeout=10)  # shown until the first token
    wait_for(lambda: "word5 " in term.screen(), timeout=30)
    assert "thinking" not in term.screen()
    term.keys("C-c")
    wait_for(lambda: "[cancelled: this turn was not stored]" in term.screen(), timeout=10)
    screen = wait_for(lambda: (s := term.screen()).rstrip().endswith(">") and s, timeout=10)
    assert "Traceback" not in screen and "word110" not in screen
    assert term.exit_status() is None  # still running, back at the prompt

    term.keys("hello there", "Enter")
    wait_for(lambda: "You said: hello there" in term.screen(), timeout=30)
    # Line editing and history: Up brings back the last line, Ctrl-A / Ctrl-E move the cursor in it.
    wait_for(lambda: term.screen().rstrip().endswith(">"), timeout=10)
    term.keys("Up", "C-a", "again: ", "C-e", "!", "Enter")
    wait_for(lambda: "You said: again: hello there!" in term.screen(), timeout=30)
    wait_for(lambda: term.screen().rstrip().endswith(">"), timeout=10)
    term.keys("C-d")  # Ctrl-D at the prompt leaves
    assert wait_for(term.exit_status, timeout=30) == "0"
    assert "Traceback" not in term.screen()

    contents = [m["content"] for m in stored(service, session)]
    assert contents == ["hello there", "You said: hello there", "again: hello there!", "You said: again: hello there!"]


def test_ctrl_c_at_the_prompt_leaves_cleanly(service, tmux_chat):
    term, _ = tmux_chat
    wait_for(lambda: term.screen().rstrip().endswith(">"), timeout=60)
    term.keys("C-c")
    assert wait_for(term.exit_status, timeout=30) == "0"
    assert "Traceback" not in term.screen() and "KeyboardInterrupt" not in term.screen()


def test_chat_sends_the_api_key_from_the_option_or_the_environment(slow_backend, tmp_path):
    env = {"INFERENCE_BASE_URL": slow_backend.base_url, "API_KEYS": "key-one,key-two"}
    with ServiceProcess(tmp_path, env) as keyed:
        def chat(*args: str, key: str | None = None) -> subprocess.CompletedProcess:
            environ = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_API_KEY"}
            environ |= {"PORT": str(keyed.port), "PYTHONPATH": str(ROOT)}
            if key:
                environ["ORCHESTRATOR_API_KEY"] = key
            return subprocess.run([ORCHESTRATOR, "chat", *args], input="hello there\n", capture_output=True, text=True,
                                  timeout=120, env=environ, cwd=ROOT)

        refused = chat()
        assert refused.returncode == 0 and "Traceback" not in refused.stderr
        assert "error:" in refused.stdout and "API key" in refused.stdout
        assert "You said: hello there" in chat("--api-key", "key-two").stdout
        assert "You said: hello there" in chat(key="key-one").stdout
