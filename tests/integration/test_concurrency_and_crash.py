"""Double texting on one session, and a kill -9 in the middle of a streamed turn."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import httpx
import pytest

from tests.fake_backend import FakeBackend, default_responder
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration


async def _burst(base_url: str, session: str, n: int) -> list[int]:
    async with httpx.AsyncClient(timeout=60) as client:
        async def one(i: int) -> int:
            r = await client.post(base_url + "/v1/chat/completions", headers={"X-Session-Id": session},
                                  json={"messages": [{"role": "user", "content": f"message {i}"}]})
            return r.status_code
        return list(await asyncio.gather(*(one(i) for i in range(n))))


def _pairs(base_url: str, session: str) -> list[tuple[str, str]]:
    messages = httpx.get(f"{base_url}/sessions/{session}/messages", timeout=30).json()["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["user", "assistant"] * (len(messages) // 2)  # never interleaved
    return [(messages[i]["content"], messages[i + 1]["content"]) for i in range(0, len(messages), 2)]


def test_ten_concurrent_requests_on_one_session_become_ten_ordered_turns(backend, tmp_path):
    with ServiceProcess(tmp_path, {"INFERENCE_BASE_URL": backend.base_url, "SUMMARY_TRIGGER_MESSAGES": "100"}) as svc:
        statuses = asyncio.run(_burst(svc.base_url, "burst", 10))
        assert statuses == [200] * 10
        pairs = _pairs(svc.base_url, "burst")
        assert len(pairs) == 10
        assert all(reply == f"You said: {user}" for user, reply in pairs)
        assert sorted(user for user, _ in pairs) == sorted(f"message {i}" for i in range(10))


def test_reject_mode_answers_409_to_a_second_text_mid_turn(tmp_path):
    def slow(body):
        time.sleep(0.3)
        return default_responder(body)

    with FakeBackend(slow) as node, ServiceProcess(tmp_path, {"INFERENCE_BASE_URL": node.base_url,
                                                            "DOUBLE_TEXTING": "reject"}) as svc:
        statuses = asyncio.run(_burst(svc.base_url, "busy", 5))
        assert statuses.count(200) >= 1 and statuses.count(409) >= 1 and set(statuses) <= {200, 409}
        pairs = _pairs(svc.base_url, "busy")
        assert len(pairs) == statuses.count(200)
        assert all(reply == f"You said: {user}" for user, reply in pairs)


def test_kill_9_mid_stream_keeps_every_completed_turn(tmp_path):
    release = threading.Event()

    def stalls_on_request(body):
        if "now crash" in json.dumps(body):
            release.wait(30)
        return default_responder(body)

    with FakeBackend(stalls_on_request) as node:
        env = {"INFERENCE_BASE_URL": node.base_url}
        svc = ServiceProcess(tmp_path, env).start()
        client = httpx.Client(base_url=svc.base_url, timeout=30, headers={"X-Session-Id": "crash"})
        for text in ("one", "two"):
            assert client.post("/v1/chat/completions",
                               json={"messages": [{"role": "user", "content": text}]}).status_code == 200
        outcome: list = []

        def stream_until_killed() -> None:
            try:
                outcome.append(httpx.post(
                    svc.base_url + "/v1/chat/completions", headers={"X-Session-Id": "crash"}, timeout=30,
                    json={"stream": True, "messages": [{"role": "user", "content": "now crash"}]}))
            except httpx.HTTPError as exc:  # what the client of a killed server sees
                outcome.append(exc)

        stream = threading.Thread(target=stream_until_killed, daemon=True)
        stream.start()
        deadline = time.monotonic() + 20
        while not any("now crash" in json.dumps(b) for b in node.requests) and time.monotonic() < deadline:
            time.sleep(0.05)
        svc.proc.send_signal(signal.SIGKILL)  # mid-turn: recall and assemble done, inference in flight
        svc.proc.wait()
        release.set()
        stream.join(10)
        assert len(outcome) == 1 and isinstance(outcome[0], httpx.HTTPError)  # the connection dropped
        with ServiceProcess(tmp_path, env) as again:
            pairs = _pairs(again.base_url, "crash")  # readable, consistent, the half turn gone
            assert pairs == [("one", "You said: one"), ("two", "You said: two")]
            r = httpx.post(again.base_url + "/v1/chat/completions", headers={"X-Session-Id": "crash"}, timeout=30,
                           json={"messages": [{"role": "user", "content": "three"}]})
            assert r.status_code == 200
            assert [u for u, _ in _pairs(again.base_url, "crash")] == ["one", "two", "three"]
            assert httpx.get(again.base_url + "/sessions/crash", timeout=10).json()["episodeCount"] == 3


def test_sigterm_lets_an_in_flight_stream_finish_and_keeps_its_turn(tmp_path):
    def slow(body):
        time.sleep(1.5)
        return default_responder(body)

    with FakeBackend(slow) as node:
        svc = ServiceProcess(tmp_path, {"INFERENCE_BASE_URL": node.base_url}).start()
        lines: list[str] = []

        def stream() -> None:
            with httpx.stream("POST", svc.base_url + "/v1/chat/completions", timeout=30,
                              headers={"X-Session-Id": "graceful"},
                              json={"stream": True, "messages": [{"role": "user", "content": "finish me"}]}) as r:
                lines.extend(line for line in r.iter_lines() if line.startswith("data: "))

        reader = threading.Thread(target=stream)
        reader.start()
        deadline = time.monotonic() + 20
        while not any("finish me" in json.dumps(b) for b in node.requests) and time.monotonic() < deadline:
            time.sleep(0.05)
        svc.proc.send_signal(signal.SIGTERM)  # mid-turn
        reader.join(30)
        assert svc.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
        assert lines[-1] == "data: [DONE]"
        text = "".join(json.loads(x[6:])["choices"][0]["delta"].get("content") or ""
                       for x in lines[:-1] if json.loads(x[6:]).get("choices"))
        assert text == "You said: finish me"
        with ServiceProcess(tmp_path, {"INFERENCE_BASE_URL": node.base_url}) as again:
            assert _pairs(again.base_url, "graceful") == [("finish me", "You said: finish me")]
