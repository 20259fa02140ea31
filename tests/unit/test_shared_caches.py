"""Per-process memories keyed by a session stay right when another worker changed the session (DATABASE_URL):
the settled-session set is checked against the shared checkpoints; kept query vectors are keyed by text, so any
worker's copy is the one every other would compute; start-up repair leaves another worker's running turn."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph

from graph.builder import build_graph
from graph.wiring import build_deps
from memory.embedder import Embedder
from memory.episodes import Episode
from server.pg_checkpoints import open_pg_saver
from server.turns.commit import reconcile
from server.turns.locks import SettledSessions
from server.turns.pg_locks import SESSIONS, PgKeyedLocks, open_lock_pool
from tests.fakes import FakeChatModel

pytestmark = pytest.mark.anyio


def echo_graph():
    graph = StateGraph(MessagesState)
    graph.add_node("reply", lambda s: {"messages": [AIMessage(f"re: {s['messages'][-1].text}")]})
    graph.add_edge(START, "reply")
    return graph


async def test_a_settled_session_is_not_trusted_once_another_worker_moved_it_on(postgres):
    url = postgres.database()
    saver_a, saver_b = await open_pg_saver(url, max_size=2), await open_pg_saver(url, max_size=2)
    try:
        a, b = echo_graph().compile(checkpointer=saver_a), echo_graph().compile(checkpointer=saver_b)
        cfg = {"configurable": {"thread_id": "s1"}}
        settled = SettledSessions(head=saver_a.latest_id)  # worker a's
        await a.ainvoke({"messages": [("user", "one")]}, cfg)
        await settled.settle("s1")
        assert await settled.still_settled("s1")  # nobody else touched it

        await b.ainvoke({"messages": [("user", "two")]}, cfg)  # a turn of s1 on worker b
        assert not await settled.still_settled("s1") and "s1" not in settled  # a loads it afresh

        await a.ainvoke({"messages": [("user", "three")]}, cfg)
        await settled.settle("s1")
        await saver_b.adelete_thread("s1")  # deleted through worker b
        assert not await settled.still_settled("s1")
        assert await saver_a.latest_id("s1") is None
    finally:
        await saver_a.aclose()
        await saver_b.aclose()


async def test_without_a_shared_store_the_settled_set_needs_no_lookup():
    settled = SettledSessions()  # the embedded profile: one process owns the checkpoints
    await settled.settle("s1")
    assert await settled.still_settled("s1") and not await settled.still_settled("s2")


def test_kept_query_vectors_are_what_another_worker_computes():
    text = "what did I say the dog is called?"
    a, b = Embedder(), Embedder()  # two workers' embedders
    kept = a.embed_one(text)
    assert a.recent(text) == kept  # kept by text: no session in the key
    fresh = b.embed_one(text)
    assert max(abs(x - y) for x, y in zip(kept, fresh, strict=True)) < 1e-5


async def test_start_up_repair_leaves_a_session_another_worker_is_running(settings, postgres):
    """A worker starting while another runs a turn finds that turn's episode uncommitted: it is under way, not
    cut by a crash, and is left to its worker; once the session is free, repair does its usual work."""
    url = postgres.database()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    deps = build_deps(settings, FakeChatModel([AIMessage("unused")]))
    saver = await open_pg_saver(url, max_size=2)
    pools = [await open_lock_pool(url, max_size=2), await open_lock_pool(url, max_size=2)]
    try:
        graph = build_graph(deps).compile(checkpointer=saver)
        running, starting = PgKeyedLocks(pools[0], SESSIONS), PgKeyedLocks(pools[1], SESSIONS)
        deps.episodes.add(Episode("busy", "default", "the cat is called Mango", "Noted.", ai_msg_id="ai-busy"),
                          committed=False)
        await running.acquire("busy")  # worker a's turn of "busy" is under way
        assert await reconcile(graph, deps, starting) == (0, 0)
        assert deps.episodes.uncommitted() == {"busy": ["ai-busy"]}  # left to worker a
        running.release("busy")
        await running.settle()
        assert await reconcile(graph, deps, starting) == (0, 1)  # a cut turn now: its episode goes
        await starting.settle()
    finally:
        for pool in pools:
            await pool.close()
        await saver.aclose()
        deps.vectors.close()
