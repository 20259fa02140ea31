"""Two services on one Postgres (DATABASE_URL), as two workers: a session's turns are ordered across them,
DOUBLE_TEXTING=reject answers 409 on the worker that does not run the turn, and each sees the turns the other
stored. In process (TestClient), each service with a data dir of its own; the end-to-end tests with two
`orchestrator serve` processes are tests/integration's."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.engines import waiting_on_a_lock
from tests.fake_backend import FakeBackend, default_responder

BUSY = "Session 's1' is answering another message; retry when it is done (DOUBLE_TEXTING=queue waits instead)."


@pytest.fixture
def gate():
    return threading.Event()


@pytest.fixture
def backend(gate):
    """Replies as usual; a message with "slow" in it stalls half-way until `gate` is set."""
    def responder(body):
        reply = default_responder(body)
        last = str(body["messages"][-1].get("content"))
        return {"content": reply, "hold": gate} if "slow" in last else reply

    with FakeBackend(responder) as node:
        yield node


@pytest.fixture
def two_workers(settings, backend, postgres, tmp_path):
    """Two services (`a`, `b`) on one fresh Postgres database; the database's URL."""
    def make(settings):
        settings.inference_base_url = backend.base_url
        return settings

    url = postgres.database()
    a = make(settings.model_copy(update={"database_url": url}))
    b = make(settings.model_copy(update={"database_url": url, "data_dir": tmp_path / "b",
                                         "chroma_dir": tmp_path / "b-chroma"}))
    return a, b, url


def chat(client: TestClient, text: str, session: str = "s1"):
    return client.post("/v1/chat/completions", headers={"X-Session-Id": session},
                       json={"messages": [{"role": "user", "content": text}], "stream": True})


def said(response) -> str:
    """The text of a streamed reply."""
    import json

    parts = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    return "".join(p["choices"][0]["delta"].get("content") or "" for p in parts if p.get("choices"))


def test_two_workers_run_one_sessions_turns_one_after_the_other(two_workers, backend, gate):
    a_settings, b_settings, url = two_workers
    with TestClient(create_app(a_settings)) as a, TestClient(create_app(b_settings)) as b, \
            ThreadPoolExecutor(2) as pool:
        first = pool.submit(chat, a, "first, slow")
        while not any("first, slow" in str(r["messages"][-1].get("content")) for r in backend.requests):
            time.sleep(0.01)  # a's turn is at the inference node, its session held
        second = pool.submit(chat, b, "second")
        waiting_on_a_lock(url)  # b's turn waits in Postgres behind a's
        assert not any(str(r["messages"][-1].get("content")) == "second" for r in backend.requests)
        gate.set()
        assert first.result(30).status_code == 200 and second.result(30).status_code == 200
        assert "You said: first, slow" in said(first.result()) and "You said: second" in said(second.result())
        # b's turn was made on top of a's: its prompt holds a's turn, and both workers read one history.
        prompt = next(r for r in backend.requests if str(r["messages"][-1].get("content")) == "second")
        assert "first, slow" in str(prompt["messages"])
        for client in (a, b):
            client.portal.call(client.app.state.runtime.turns.drain)
            history = [(m["role"], m["content"]) for m in client.get("/sessions/s1/messages").json()["messages"]]
            assert history == [("user", "first, slow"), ("assistant", "You said: first, slow"),
                               ("user", "second"), ("assistant", "You said: second")]
        assert chat(a, "third").status_code == 200  # a's settled set saw that b moved the session on
        history = [m["content"] for m in b.get("/sessions/s1/messages").json()["messages"]]
        assert history[-2:] == ["third", "You said: third"] and len(history) == 6


def test_reject_mode_answers_409_on_the_other_worker(two_workers):
    a_settings, b_settings, _ = two_workers
    a_settings.double_texting = b_settings.double_texting = "reject"
    with TestClient(create_app(a_settings)) as a, TestClient(create_app(b_settings)) as b:
        locks = a.app.state.runtime.turns.locks
        a.portal.call(locks.acquire, "s1")  # a turn of s1 is running on worker a
        try:
            refused = chat(b, "hello")
            assert refused.status_code == 409 and refused.json()["error"]["message"] == BUSY
        finally:
            a.portal.call(locks.release, "s1")  # in the service's event loop, as its turns do
            a.portal.call(locks.settle)
        assert chat(b, "hello").status_code == 200  # free again on every worker


def test_a_duplicate_in_flight_on_one_worker_waits_for_the_other(two_workers):
    a_settings, b_settings, url = two_workers
    with TestClient(create_app(a_settings)) as a, TestClient(create_app(b_settings)) as b, \
            ThreadPoolExecutor(1) as pool:
        locks = a.app.state.runtime.idempotency_locks
        key = "/v1/chat/completions||key-1"  # route, API key's owner (none), Idempotency-Key
        a.portal.call(locks.acquire, key)  # the first request with this key is in flight on worker a
        duplicate = pool.submit(lambda: b.post("/v1/chat/completions", headers={"X-Session-Id": "s2",
                                                                                 "Idempotency-Key": "key-1"},
                                               json={"messages": [{"role": "user", "content": "once"}]}))
        waiting_on_a_lock(url)  # b waits for a's request to be done, in Postgres
        assert not duplicate.done()
        a.portal.call(locks.release, key)
        assert duplicate.result(30).status_code == 200
