"""Two `python -m server` workers on one Postgres (DATABASE_URL, each with data dirs of its own until the stores
move to Postgres too): one is killed (kill -9) in the middle of a streamed turn while a message for the same
session waits on the other; the session's advisory lock dies with the killed worker's connection, the waiting
turn runs, and nothing of the killed turn is stored."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.engines import waiting_on_a_lock
from tests.fake_backend import FakeBackend, default_responder
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration


def test_a_worker_killed_mid_turn_releases_its_session_to_the_other(postgres, tmp_path):
    gate = threading.Event()

    def responder(body):
        reply = default_responder(body)
        return {"content": reply, "hold": gate} if "slow" in str(body["messages"][-1].get("content")) else reply

    url = postgres.database()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with FakeBackend(responder) as node, ThreadPoolExecutor(2) as pool:
        env = {"INFERENCE_BASE_URL": node.base_url, "DATABASE_URL": url}
        a = ServiceProcess(tmp_path / "a", env).start()
        try:
            with ServiceProcess(tmp_path / "b", env) as b:
                def stream_on_a() -> str:
                    try:
                        with httpx.stream("POST", a.base_url + "/v1/chat/completions", timeout=60,
                                          headers={"X-Session-Id": "s1"},
                                          json={"messages": [{"role": "user", "content": "first, slow"}],
                                                "stream": True}) as r:
                            return "".join(r.iter_text())
                    except httpx.HTTPError as exc:  # the worker died under it
                        return f"cut: {exc!r}"

                cut = pool.submit(stream_on_a)
                while not any("first, slow" in str(r["messages"][-1].get("content")) for r in node.requests):
                    time.sleep(0.01)  # a's turn is mid-stream at the node, its session held
                second = pool.submit(httpx.post, b.base_url + "/v1/chat/completions", timeout=60,
                                     headers={"X-Session-Id": "s1"},
                                     json={"messages": [{"role": "user", "content": "second"}]})
                waiting_on_a_lock(url)  # b's turn waits in Postgres behind a's
                assert a.proc is not None
                a.proc.kill()  # kill -9
                a.proc.wait(10)
                reply = second.result(60)
                assert reply.status_code == 200, reply.text
                assert reply.json()["choices"][0]["message"]["content"] == "You said: second"
                history = httpx.get(f"{b.base_url}/sessions/s1/messages", timeout=30).json()["messages"]
                assert [(m["role"], m["content"]) for m in history] == [("user", "second"),
                                                                        ("assistant", "You said: second")]
                gate.set()
                assert "You said: first, slow" not in cut.result(30)  # the killed turn never completed
        finally:
            gate.set()
            a.stop()
