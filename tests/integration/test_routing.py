"""Routing by query class and the semantic cache through the real server, driven by the `openai` SDK, in front of
two scripted inference nodes (the default one and the one ROUTES sends small talk to)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.fake_backend import FakeBackend
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nodes():
    with FakeBackend() as default, FakeBackend() as small:
        yield default, small


@pytest.fixture(scope="module")
def service(nodes, tmp_path_factory):
    default, small = nodes
    env = {"INFERENCE_BASE_URL": default.base_url, "INFERENCE_MODEL": "fake-model",
           "ROUTES": json.dumps({"small_talk": small.base_url, "complex": "big-model"}),
           "SEMANTIC_CACHE": "true", "API_KEYS": "key-one,key-two", "API_KEY_SCOPED_SESSIONS": "true"}
    with ServiceProcess(tmp_path_factory.mktemp("routing"), env) as svc:
        yield svc


def client(service, key: str = "key-one", session: str | None = None, project: str | None = None) -> openai.OpenAI:
    headers = {k: v for k, v in (("X-Session-Id", session), ("X-Project-Id", project)) if v}
    return openai.OpenAI(base_url=service.base_url + "/v1", api_key=key, default_headers=headers, max_retries=0)


def ask(service, text: str, **kw):
    """(reply text, X-Cache header or None) of one non-streaming turn."""
    raw = client(service, **kw).chat.completions.with_raw_response.create(
        model="fake-model", messages=[{"role": "user", "content": text}])
    return raw.parse().choices[0].message.content, raw.headers.get("x-cache")


def test_each_class_goes_to_its_route(service, nodes):
    default, small = nodes
    before_default, before_small = len(default.turn_prompts()), len(small.turn_prompts())
    text, cache = ask(service, "hello there!", session="route-1")
    assert text == "You said: hello there!" and cache is None  # small talk is not cacheable: no header
    assert len(small.turn_prompts()) == before_small + 1 and len(default.turn_prompts()) == before_default
    turn = next(b for b in reversed(small.requests) if b["messages"][0]["role"] == "system")
    assert turn["max_tokens"] == 256  # the class's reply limit

    ask(service, "design a CI pipeline for the repo, with linting, tests and a release job, then document it",
        session="route-2")
    assert len(small.turn_prompts()) == before_small + 1
    turn = next(b for b in reversed(default.requests) if b["messages"][0]["role"] == "system")
    assert turn["model"] == "big-model"  # complex tasks: the model ROUTES names


def test_a_cached_answer_stays_in_its_project_and_key(service, nodes):
    default, _ = nodes
    first, cache = ask(service, "What is the boiling point of water?", session="cache-1", project="lab")
    assert cache == "miss"
    calls = len(default.turn_prompts())
    text, cache = ask(service, "What's the boiling point of water?", session="cache-2", project="lab")
    assert (text, cache) == (first, "hit") and len(default.turn_prompts()) == calls  # the node was not asked
    with httpx.Client(base_url=service.base_url, headers={"Authorization": "Bearer key-one"}) as http:
        stored = http.get("/sessions/cache-2/messages").json()
        assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]  # a normal turn of its session

        _, cache = ask(service, "What's the boiling point of water?", session="cache-3", project="kitchen")
        assert cache == "miss"  # another project
        ask(service, "What is a mutex?", session="cache-4")  # key one's own default scope
        _, cache = ask(service, "What's a mutex?", key="key-two", session="cache-5")
        assert cache == "miss"  # another key
        _, cache = ask(service, "What's a mutex?", session="cache-6")
        assert cache == "hit"
        _, cache = ask(service, "what did I say about the boiling point of water?", session="cache-7", project="lab")
        assert cache is None  # a memory question never goes through the cache

        stream = client(service, session="cache-8", project="lab").chat.completions.with_raw_response.create(
            model="fake-model", messages=[{"role": "user", "content": "What's the boiling point of water?"}],
            stream=True)
        assert stream.headers.get("x-cache") == "hit"
        assert "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices) == first

        metrics = http.get("/metrics").text
        assert 'orchestrator_semantic_cache_total{result="hit"}' in metrics
        ratio = next(line for line in metrics.splitlines() if line.startswith("orchestrator_semantic_cache_hit_ratio"))
        assert 0 < float(ratio.split()[-1]) < 1
        saved = next(line for line in metrics.splitlines()
                     if line.startswith("orchestrator_semantic_cache_saved_tokens_total"))
        assert float(saved.split()[-1]) > 0
        health = http.get("/health").json()["routing"]
        assert health["enabled"] and "small_talk" in health["classifier"]["classes"]
        assert health["semantic_cache"]["entries"] >= 2

        assert http.delete("/sessions/cache-1").status_code in (200, 204)  # what it contributed goes with it
        _, cache = ask(service, "What's the boiling point of water?", session="cache-9", project="lab")
        assert cache == "miss"
