"""The failover model's circuits: a half-open trial is taken only by the backend actually tried, is given back
when a trial is cancelled, and every circuit's state (closed, half-open, open) is exported in /metrics."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import HumanMessage

from inference.backends import Backend, CircuitBreaker, FailoverChatModel
from server.app import create_app
from tests.fake_backend import FakeBackend
from tests.fakes import FakeChatModel, contract


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def half_open(clock: Clock) -> CircuitBreaker:
    """A circuit that failed once (threshold 1) and whose cooldown has passed."""
    breaker = CircuitBreaker(threshold=1, cooldown=10, clock=clock)
    breaker.failure()
    clock.now += 10
    assert breaker.state == "half-open"
    return breaker


class Unreachable(FakeChatModel):
    """A backend that refuses every connection, as a node that is down does."""

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        raise openai.APIConnectionError(request=httpx.Request("POST", "http://down.invalid/v1/chat/completions"))


class Hanging(FakeChatModel):
    """A backend that never answers."""

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        await asyncio.Event().wait()


@pytest.mark.anyio
async def test_a_half_open_fallback_behind_a_healthy_primary_is_still_tried_later():
    clock = Clock()
    primary = Backend("http://primary/v1", FakeChatModel([contract("from the primary")]), CircuitBreaker())
    fallback = Backend("http://fallback/v1", FakeChatModel([contract("from the fallback")]), half_open(clock))
    model = FailoverChatModel(backends=[primary, fallback])

    reply = await model.ainvoke([HumanMessage("hi")])
    assert "from the primary" in reply.content
    assert fallback.breaker.state == "half-open" and not fallback.breaker.trial  # not tried: no trial taken

    primary.model = Unreachable([])  # the primary goes down: the half-open fallback gets its trial
    reply = await model.ainvoke([HumanMessage("again")])
    assert "from the fallback" in reply.content
    assert fallback.breaker.state == "closed"


@pytest.mark.anyio
async def test_a_cancelled_trial_gives_the_trial_back():
    clock = Clock()
    backend = Backend("http://slow/v1", Hanging([]), half_open(clock))
    model = FailoverChatModel(backends=[backend])
    task = asyncio.create_task(model.ainvoke([HumanMessage("hi")]))
    while not backend.breaker.trial:  # the trial is under way
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not backend.breaker.trial
    assert backend.breaker.state == "half-open" and backend.breaker.allow()  # the next request may try


def test_metrics_export_every_circuit_state(settings):
    with FakeBackend() as primary, FakeBackend() as fallback:
        primary.fail_with = 500
        settings.inference_base_url = primary.base_url
        settings.inference_fallback_urls = fallback.base_url
        settings.circuit_failure_threshold = 1
        settings.circuit_cooldown_seconds = 3600
        with TestClient(create_app(settings)) as client:
            r = client.post("/v1/chat/completions", headers={"X-Session-Id": "m"},
                            json={"messages": [{"role": "user", "content": "hello"}]})
            assert r.status_code == 200
            text = client.get("/metrics").text
            for url, state in ((primary.base_url, "open"), (fallback.base_url, "closed")):
                for name in ("closed", "half-open", "open"):
                    value = "1.0" if name == state else "0.0"
                    assert f'orchestrator_circuit_state{{backend="{url}",state="{name}"}} {value}' in text
