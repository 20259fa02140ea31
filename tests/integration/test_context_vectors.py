"""Context vectors on live turns, through the real server: a turn's episode is found by its user message's
vector at once, and by its context vector (the exchange and the one before it) once the service has been idle
for REFINE_IDLE_SECONDS (EPISODE_EMBEDDING=context-idle, the default), with the `openai` SDK as the client."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration
IDLE = 3.0


@pytest.fixture(scope="module")
def service(backend, tmp_path_factory):
    with ServiceProcess(tmp_path_factory.mktemp("context"), {"INFERENCE_BASE_URL": backend.base_url,
                                                             "REFINE_IDLE_SECONDS": str(IDLE)}) as svc:
        yield svc


def similarity(service, query: str, needle: str) -> float | None:
    """The vector similarity `/memory/search` reports for the episode holding `needle` (None: no vector yet)."""
    done = httpx.post(service.base_url + "/memory/search", json={"query": query, "k": 10}, timeout=30)
    done.raise_for_status()
    hit = next(h for h in done.json()["results"] if needle in h["text"])
    vector = hit["scoreParts"]["vector"]
    return None if vector is None else vector["similarity"]


def test_a_turns_episode_is_found_by_its_context_once_the_service_is_idle(service):
    client = openai.OpenAI(base_url=service.base_url + "/v1", api_key="unused", max_retries=0,
                           default_headers={"X-Session-Id": "ctx-dog"})
    history: list = []
    for said in ("I adopted a retired greyhound from the shelter last week.",
                 "Her name is Zephyrine and she loves the beach."):
        history.append({"role": "user", "content": said})
        reply = client.chat.completions.create(model="fake-model", messages=history)
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
    finished = time.monotonic()

    query = "What breed of dog is Zephyrine?"
    first = None
    while first is None:  # indexed by its user message's vector a moment after the turn
        assert time.monotonic() - finished < IDLE, "the episode had no vector before the service was idle"
        first = similarity(service, query, "Zephyrine and she loves")
        time.sleep(0.1)
    assert time.monotonic() - finished < IDLE  # still the message's vector: the context one comes once idle

    deadline = time.monotonic() + 30
    while (later := similarity(service, query, "Zephyrine and she loves")) == first:
        assert time.monotonic() < deadline, "the context vector never replaced the message's"
        time.sleep(0.2)
    assert later is not None and later > first + 0.05  # the greyhound of the exchange before it now counts
    assert time.monotonic() - finished >= IDLE
