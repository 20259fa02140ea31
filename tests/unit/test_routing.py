"""Routing by query class and the semantic cache, on the whole graph with a fake chat model, real temporary
SQLite and Chroma stores and the real MiniLM embedder."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import HumanMessage, ToolMessage

from graph.classifier import QueryClassifier
from graph.wiring import build_deps
from memory.cache_guard import same_particulars
from memory.semantic_cache import SemanticCache
from server.app import create_app
from tests.fakes import FakeChatModel, contract


def cfg(thread: str, scope: str = "project:p1", owner: str | None = "key-a") -> dict:
    return {"configurable": {"thread_id": thread, "scope": scope, "owner": owner}}


async def ask(graph, text: str, config: dict) -> dict:
    return await graph.ainvoke({"messages": [HumanMessage(text)]}, config)


@pytest.mark.anyio
async def test_small_talk_sends_no_memory_and_a_memory_question_recalls_deeper(settings, compiled):
    model = FakeChatModel([contract(f"reply {i}") for i in range(5)])
    deps, graph = await compiled(model)
    await ask(graph, "Remember: the spare key is under the blue pot", cfg("s1"))
    await deps.indexer.drain()

    await ask(graph, "hello there!", cfg("s2"))
    state = (await graph.aget_state(cfg("s2"))).values
    assert state["route"]["class"] == "small_talk" and state["route"]["recall_top_k"] == 0
    assert state["recalled"]["episodes"] == []
    assert "blue pot" not in model.prompt_text(-1)  # nothing of s1 in the small talk's prompt
    assert state["messages"][-1].response_metadata["query_class"] == "small_talk"

    await ask(graph, "what did I tell you about the spare key?", cfg("s3"))
    state = (await graph.aget_state(cfg("s3"))).values
    assert state["route"]["class"] == "memory" and state["route"]["recall_top_k"] == 10
    assert "spare key is under the blue pot" in model.prompt_text(-1)  # recalled from s1


@pytest.mark.anyio
async def test_the_class_caps_the_reply_and_picks_the_model(settings, compiled):
    settings.routes = json.dumps({"small_talk": "tiny-model"})
    model = FakeChatModel([contract("hi"), contract("Paris.")])
    deps, graph = await compiled(model)
    await ask(graph, "good morning", cfg("m1"))
    state = (await graph.aget_state(cfg("m1"))).values
    assert state["route"]["model"] == "tiny-model" and state["route"]["max_tokens"] == 256
    assert deps.router is not None and deps.router.chat_model(state["route"]) is None  # a model, not a backend


@pytest.mark.anyio
async def test_cached_answer_only_for_the_same_project_and_key_and_never_for_memory(settings, compiled):
    settings.semantic_cache = True
    model = FakeChatModel([contract(f"model answer {i}") for i in range(6)])
    deps, graph = await compiled(model)
    out = await ask(graph, "What is the capital of France?", cfg("c1"))
    assert out["messages"][-1].content == "model answer 0"
    assert deps.semantic_cache is not None and deps.semantic_cache.count("c1") == 1
    calls = len(model.prompts)

    out = await ask(graph, "What's the capital city of France?", cfg("c2"))  # same project and key
    assert len(model.prompts) == calls  # the model was not asked
    reply = out["messages"][-1]
    assert reply.content == "model answer 0" and reply.response_metadata["cache"] == "hit"
    stored = (await graph.aget_state(cfg("c2"))).values["messages"]
    assert [m.type for m in stored] == ["human", "ai"]  # stored as a normal turn of its session
    assert deps.episodes.count() == 2

    await ask(graph, "What's the capital city of France?", cfg("c3", scope="project:p2"))  # another project
    assert len(model.prompts) == calls + 1
    await ask(graph, "What's the capital city of France?", cfg("c4", owner="key-b"))  # another key
    assert len(model.prompts) == calls + 2
    out = await ask(graph, "What did I say about the capital of France?", cfg("c5"))  # a memory question
    assert len(model.prompts) == calls + 3
    assert (await graph.aget_state(cfg("c5"))).values["route"]["cache"] == "off"


@pytest.mark.anyio
async def test_tool_results_are_never_answered_from_the_cache_nor_fill_it(settings, compiled):
    settings.semantic_cache = True
    call = {"id": "call_1", "name": "lookup", "arguments": {"term": "mutex"}}
    model = FakeChatModel([contract("Looking it up.", [call]), contract("A lock, says the glossary."),
                           contract("A mutual exclusion lock.")])
    deps, graph = await compiled(model)
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Look a term up",
                                               "parameters": {"type": "object"}}}]
    await graph.ainvoke({"messages": [HumanMessage("What is a mutex?")], "tools": tools}, cfg("t1"))
    await graph.ainvoke({"messages": [ToolMessage("a lock", tool_call_id="call_1", name="lookup")], "tools": tools},
                        cfg("t1"))
    assert (await graph.aget_state(cfg("t1"))).values["route"]["cache"] == "off"
    assert deps.semantic_cache is not None and deps.semantic_cache.count() == 0  # neither the call nor the result
    out = await graph.ainvoke({"messages": [HumanMessage("What is a mutex?")], "tools": tools}, cfg("t2"))
    assert out["messages"][-1].content == "A mutual exclusion lock." and len(model.prompts) == 3


@pytest.mark.anyio
async def test_deleting_a_session_or_a_project_removes_its_cached_answers(settings, compiled):
    settings.semantic_cache = True
    model = FakeChatModel([contract(f"answer {i}") for i in range(4)])
    deps, graph = await compiled(model)
    await ask(graph, "What is the boiling point of water?", cfg("d1"))
    await ask(graph, "How does TCP differ from UDP?", cfg("d2", scope="project:p9"))
    cache = deps.semantic_cache
    assert cache is not None and cache.count("d1") == 1 and cache.count("d2") == 1
    calls = len(model.prompts)
    await ask(graph, "What is the boiling point of water?", cfg("d3"))
    assert len(model.prompts) == calls  # served from d1's entry
    deps.admin.forget_session("d1")
    assert cache.count("d1") == 0 and cache.count("d2") == 1
    await ask(graph, "What is the boiling point of water?", cfg("d4"))
    assert len(model.prompts) == calls + 1  # what d1 contributed is gone
    deps.admin.forget_scope("project:p9")
    assert cache.count("d2") == 0


def test_entries_expire_after_their_ttl(database):
    cache = SemanticCache(database)
    vector = [1.0] + [0.0] * 383
    cache.store("project:a", "k", "key", "s", "knowledge", "What is a mutex?", vector, "A lock.", 12, 60, now=1000)
    assert cache.lookup("project:a", "k", "key", "What is a mutex?", vector, 0.9, now=1059) is not None
    assert cache.lookup("project:a", "k", "key", "What is a mutex?", vector, 0.9, now=1061) is None
    # Expired rows are swept by the next write.
    cache.store("project:a", "k", "key", "s2", "knowledge", "other", vector, "x", 1, 60, now=2000)
    assert cache.count("s") == 0


def test_the_guard_keeps_near_misses_apart():
    assert same_particulars("What is the capital of France?", "What's the capital city of France?")
    assert not same_particulars("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?")
    assert not same_particulars("Max of a 32-bit integer?", "Max of a 64-bit integer?")
    assert not same_particulars("When did World War I end?", "When did World War II end?")


def test_the_classes_file_is_read_again_when_it_changes(tmp_path: Path, settings):
    path = tmp_path / "classes.json"

    def write(pattern: str) -> None:
        path.write_text(json.dumps({"default_class": "other", "classes": {
            "greeting": {"patterns": [pattern], "examples": ["hello friend"]},
            "other": {"examples": ["the weather report for tomorrow"]}}}))

    write("^hi$")
    deps = build_deps(settings, FakeChatModel([]))
    try:
        classifier = QueryClassifier(deps.embedder, path, check_every=0)
        assert classifier.classify("hi", None).label == "greeting"
        assert classifier.classify("yo", None).label == "other"
        write("^yo$")
        stamp = time.time() + 5  # a new modification time even on a coarse clock
        os.utime(path, (stamp, stamp))
        assert classifier.classify("yo", None).label == "greeting"
        assert classifier.reloads == 1
        path.write_text("{not json")  # a broken edit keeps the classes loaded before it
        os.utime(path, (stamp + 5, stamp + 5))
        assert classifier.classify("yo", None).label == "greeting"
        assert classifier.error and "classes.json" in classifier.error
    finally:
        deps.vectors.close()


def test_the_access_log_line_and_the_anthropic_door_carry_the_route(settings, caplog):
    settings.semantic_cache = True
    model = FakeChatModel([contract("A lock."), contract("hi!")])
    with TestClient(create_app(settings, chat_model=model)) as client, \
            caplog.at_level(logging.INFO, logger="orchestrator.access"):
        body = {"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "What is a mutex?"}]}
        first = client.post("/v1/messages", json=body)
        again = client.post("/v1/messages", json={**body, "messages": [{"role": "user", "content": "What's a mutex?"}]})
        assert (first.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
        assert again.json()["content"][0]["text"] == "A lock."
        hello = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hello!"}]})
        assert "x-cache" not in hello.headers
    lines = [r.fields for r in caplog.records if getattr(r, "fields", {}).get("route") in ("/v1/messages",
                                                                                          "/v1/chat/completions")]
    assert [(f["query_class"], f["cache"]) for f in lines] == [("knowledge", "miss"), ("knowledge", "hit"),
                                                               ("small_talk", None)]
    assert lines[2]["route_recall_top_k"] == 0 and lines[2]["route_max_tokens"] == 256
