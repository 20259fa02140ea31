"""Two workers (two `python -m server` processes on two ports) on one PostgreSQL database and one Chroma server:
the scale-out profile as a user runs it, driven through the real HTTP API and the `openai` SDK."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.fake_backend import FakeBackend, default_responder, prompt_text
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def shared(postgres, chroma_server) -> dict[str, str]:
    """A fresh Postgres database and an emptied Chroma server: what every worker of one deployment points at."""
    chroma_server.reset()
    return {"DATABASE_URL": postgres.database("scale"), "CHROMA_URL": chroma_server.url}


class Workers:
    """Two workers of one deployment, in front of one inference node."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.a = ServiceProcess(root / "a", env)
        self.b = ServiceProcess(root / "b", env)

    def __enter__(self) -> Workers:
        self.a.start()
        self.b.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.a.stop()
        self.b.stop()


@pytest.fixture
def workers(tmp_path, shared, backend) -> Iterator[Workers]:
    env = {**shared, "INFERENCE_BASE_URL": backend.base_url, "SUMMARY_TRIGGER_MESSAGES": "100"}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with Workers(tmp_path, env) as pair:
        yield pair


def say(worker: ServiceProcess, session: str, text: str, project: str | None = None) -> str:
    headers = {"X-Session-Id": session, **({"X-Project-Id": project} if project else {})}
    client = openai.OpenAI(base_url=worker.base_url + "/v1", api_key="unused", default_headers=headers,
                           max_retries=0)
    reply = client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content or ""


def pairs(worker: ServiceProcess, session: str) -> list[tuple[str, str]]:
    messages = httpx.get(f"{worker.base_url}/sessions/{session}/messages", timeout=30).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2)  # never interleaved
    return [(messages[i]["content"], messages[i + 1]["content"]) for i in range(0, len(messages), 2)]


def search(worker: ServiceProcess, query: str, project: str | None = None) -> list[dict]:
    body = {"query": query, "k": 5, **({"projectId": project} if project else {})}
    r = httpx.post(worker.base_url + "/memory/search", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_a_session_alternating_between_workers_keeps_its_memory(workers, backend):
    assert say(workers.a, "alt", "my locker code is 4417") == "You said: my locker code is 4417"
    assert say(workers.b, "alt", "and my bike is called Comet") == "You said: and my bike is called Comet"
    assert say(workers.a, "alt", "what do you know about me?") == "You said: what do you know about me?"
    # Worker A's last prompt holds the turn worker B took, and B's held A's: one conversation.
    assert "Comet" in backend.turn_prompts()[-1] and "4417" in backend.turn_prompts()[-2]
    assert pairs(workers.b, "alt") == pairs(workers.a, "alt") and len(pairs(workers.a, "alt")) == 3
    # Recall on worker B finds, in a new session, the episode written through worker A — lexically at once,
    # and by vector once the indexer of one of the workers has embedded it.
    assert any("4417" in hit["text"] for hit in search(workers.b, "locker code"))
    say(workers.b, "other", "remind me of the locker")
    assert "4417" in backend.turn_prompts()[-1]
    detail = lambda: httpx.get(f"{workers.b.base_url}/sessions/alt", timeout=10).json()  # noqa: E731
    assert detail()["episodeCount"] == 3


def test_ten_concurrent_requests_on_one_session_across_two_workers_are_ordered_turns(workers):
    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            async def one(i: int) -> int:
                worker = workers.a if i % 2 else workers.b
                r = await client.post(worker.base_url + "/v1/chat/completions", headers={"X-Session-Id": "burst"},
                                      json={"messages": [{"role": "user", "content": f"message {i}"}]})
                return r.status_code
            return list(await asyncio.gather(*(one(i) for i in range(10))))

    assert asyncio.run(burst()) == [200] * 10
    for worker in (workers.a, workers.b):
        turns = pairs(worker, "burst")
        assert len(turns) == 10
        assert all(reply == f"You said: {user}" for user, reply in turns)
        assert sorted(user for user, _ in turns) == sorted(f"message {i}" for i in range(10))


def test_reject_mode_answers_409_across_workers(tmp_path, shared):
    release = threading.Event()

    def holds(body):
        if "first" in prompt_text(body):
            release.wait(20)
        return default_responder(body)

    with FakeBackend(holds) as node:
        env = {**shared, "INFERENCE_BASE_URL": node.base_url, "DOUBLE_TEXTING": "reject"}
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
        with Workers(tmp_path, env) as pair:
            first: list[httpx.Response] = []
            thread = threading.Thread(target=lambda: first.append(httpx.post(
                pair.a.base_url + "/v1/chat/completions", headers={"X-Session-Id": "busy"}, timeout=60,
                json={"messages": [{"role": "user", "content": "first"}]})))
            thread.start()
            assert wait_for(lambda: any("first" in p for p in node.turn_prompts()))
            second = httpx.post(pair.b.base_url + "/v1/chat/completions", headers={"X-Session-Id": "busy"},
                                timeout=30, json={"messages": [{"role": "user", "content": "second"}]})
            assert second.status_code == 409, second.text
            release.set()
            thread.join(30)
            assert first[0].status_code == 200
            assert pairs(pair.b, "busy") == [("first", "You said: first")]


def test_a_worker_killed_mid_stream_loses_no_completed_turn_and_frees_its_session(tmp_path, shared):
    release = threading.Event()

    def stalls(body):
        if "now crash" in json.dumps(body):
            release.wait(30)
        return default_responder(body)

    with FakeBackend(stalls) as node:
        env = {**shared, "INFERENCE_BASE_URL": node.base_url}
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
        with Workers(tmp_path, env) as pair:
            for text in ("one", "two"):
                say(pair.a if text == "one" else pair.b, "crash", text)
            outcome: list = []

            def stream_until_killed() -> None:
                try:
                    outcome.append(httpx.post(
                        pair.a.base_url + "/v1/chat/completions", headers={"X-Session-Id": "crash"}, timeout=30,
                        json={"stream": True, "messages": [{"role": "user", "content": "now crash"}]}))
                except httpx.HTTPError as exc:
                    outcome.append(exc)

            thread = threading.Thread(target=stream_until_killed, daemon=True)
            thread.start()
            assert wait_for(lambda: any("now crash" in json.dumps(b) for b in node.requests))
            assert pair.a.proc is not None
            pair.a.proc.send_signal(signal.SIGKILL)  # mid-turn, holding the session
            pair.a.proc.wait()
            release.set()
            thread.join(10)
            assert len(outcome) == 1 and isinstance(outcome[0], httpx.HTTPError)
            # Worker B goes on serving the same session at once: the dead worker's lock died with it.
            assert say(pair.b, "crash", "three") == "You said: three"
            assert [u for u, _ in pairs(pair.b, "crash")] == ["one", "two", "three"]
            assert httpx.get(pair.b.base_url + "/sessions/crash", timeout=10).json()["episodeCount"] == 3
            assert not any("now crash" in hit["text"] for hit in search(pair.b, "now crash"))


def test_a_projects_secret_never_reaches_another_projects_prompt(workers, backend):
    say(workers.a, "alpha-1", "the vault password is zebra-7781", project="alpha")
    say(workers.b, "beta-1", "what is the vault password? zebra?", project="beta")
    assert "7781" not in backend.turn_prompts()[-1]
    assert not any("7781" in hit["text"] for hit in search(workers.a, "vault password zebra", "beta"))
    assert any("7781" in hit["text"] for hit in search(workers.b, "vault password zebra", "alpha"))
