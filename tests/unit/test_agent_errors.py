"""LangServe `/agent` answers a refused turn with its own status (409 session_busy in DOUBLE_TEXTING=reject),
as the OpenAI routes do, not with a 500: as a plain response, or as the stream's `error` event."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi.testclient import TestClient

import server.protocols.langserve as langserve_routes
from server.app import create_app
from tests.fake_backend import FakeBackend

BUSY = "Session 'busy' is answering another message; retry when it is done (DOUBLE_TEXTING=queue waits instead)."


def agent_body(session: str, text: str = "hi") -> dict:
    return {"input": {"messages": [{"type": "human", "content": text}]},
            "config": {"configurable": {"thread_id": session}}}


def error_events(text: str) -> list[dict]:
    """The data of every `event: error` of a LangServe stream."""
    events = [block.splitlines() for block in text.replace("\r\n", "\n").split("\n\n") if block.strip()]
    return [json.loads(lines[1].removeprefix("data: ")) for lines in events if lines[0] == "event: error"]


@pytest.fixture
def client(settings):
    with FakeBackend() as node:
        settings.inference_base_url = node.base_url
        settings.double_texting = "reject"
        with TestClient(create_app(settings)) as c:
            yield c


@pytest.fixture
def busy(client):
    """A turn of session 'busy' is running (its lock is held)."""
    locks = client.app.state.runtime.turns.locks
    client.portal.call(locks.acquire, "busy")
    yield
    locks.release("busy")


def test_agent_answers_409_like_the_openai_route(client, busy):
    openai = client.post("/v1/chat/completions", headers={"X-Session-Id": "busy"},
                         json={"messages": [{"role": "user", "content": "hi"}]})
    assert openai.status_code == 409 and openai.json()["error"]["message"] == BUSY
    for endpoint in ("invoke", "stream", "stream_events"):
        r = client.post(f"/agent/{endpoint}", json=agent_body("busy"))
        assert r.status_code == 409, (endpoint, r.text)
        assert r.json() == openai.json(), endpoint


def test_a_session_busy_after_the_early_check_ends_the_stream_with_a_409_event(client, busy, monkeypatch):
    async def no_early_check(runtime, configurable):  # the turn before it takes the lock in between
        return None

    monkeypatch.setattr(langserve_routes, "_refuse_early", no_early_check, raising=False)
    for endpoint in ("stream", "stream_events"):
        r = client.post(f"/agent/{endpoint}", json=agent_body("busy"))
        assert r.status_code == 200
        assert error_events(r.text) == [{"status_code": 409, "message": BUSY}], endpoint
    assert client.post("/agent/invoke", json=agent_body("busy")).status_code == 409


def test_a_burst_on_one_session_gets_turns_and_409s_never_500s(client):
    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent", timeout=60) as http:
            return await asyncio.gather(*(http.post("/agent/stream", json=agent_body("burst", f"text {i}"))
                                          for i in range(5)))

    outcomes = []
    for r in client.portal.call(burst):
        if r.status_code == 409:
            outcomes.append(409)
        else:
            assert r.status_code == 200, r.text
            errors = error_events(r.text)
            assert errors in ([], [{"status_code": 409, "message": BUSY.replace("'busy'", "'burst'")}]), r.text
            outcomes.append(409 if errors else 200)
    assert outcomes.count(200) >= 1 and outcomes.count(409) >= 1, outcomes


def test_a_request_with_nothing_to_answer_is_a_400_not_a_500(client):
    r = client.post("/agent/invoke", json={"input": {"messages": []}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    streamed = client.post("/agent/stream", json={"input": {"messages": []}})
    assert [e["status_code"] for e in error_events(streamed.text)] == [400]
