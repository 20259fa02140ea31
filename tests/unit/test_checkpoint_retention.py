"""Checkpoint retention (CHECKPOINTS_KEPT): bounded checkpoints per session, the same conversation, summary and
recall as without it, failed turns still undone, freed space returned, figures in /metrics. The tests of the
policy run on both checkpoint stores: the SQLite file and Postgres (DATABASE_URL)."""

from __future__ import annotations

import io
import operator
import sqlite3
from typing import Annotated

import aiosqlite
import psycopg
import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import AIMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from typing_extensions import TypedDict

from graph.builder import build_graph
from memory.checkpoint_retention import SqliteCheckpointRetention
from memory.pg_checkpoint_retention import PgCheckpointRetention
from server.app import create_app
from server.checkpoint_pruner import uses_delta_channels
from server.pg_checkpoints import open_pg_saver
from server.runtime import build_deps
from tests.fakes import FakeChatModel

SESSIONS = ("alpha", "beta")


class Rows:
    """Counts in either checkpoint store: SQL written with `%s` and `{writes}` (SQLite's table `writes`, Postgres'
    `checkpoint_writes`)."""

    def __init__(self, sqlite_path=None, url: str | None = None) -> None:
        self.sqlite_path, self.url = sqlite_path, url

    def all(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.url:
            with psycopg.connect(self.url) as db:
                return [tuple(r) for r in db.execute(sql.format(writes="checkpoint_writes"), params).fetchall()]
        with sqlite3.connect(self.sqlite_path) as db:
            return db.execute(sql.format(writes="writes").replace("%s", "?"), params).fetchall()

    def one(self, sql: str, params: tuple = ()) -> int:
        return int(self.all(sql, params)[0][0])


def rows_of(settings) -> Rows:
    return Rows(settings.checkpoints_path, settings.database_url)


def checkpoints_per_thread(settings) -> dict[str, int]:
    return dict(rows_of(settings).all("SELECT thread_id, COUNT(*) FROM checkpoints GROUP BY thread_id"))


@pytest.fixture(params=["sqlite", "postgres"])
def profile(request, settings):
    """Settings on each checkpoint store, one call a service: the SQLite file (of `data_dir`), then a fresh
    Postgres database each call."""
    def fresh(**update):
        if request.param == "postgres":
            update["database_url"] = request.getfixturevalue("postgres").database()
        return settings.model_copy(update=update)

    return fresh


def settle(client: TestClient) -> None:
    """Wait for the runs' background parts (summaries, naming), the pruner's pass and the indexer (what the
    vector search finds must not depend on how far the background embedding got)."""
    runtime = client.app.state.runtime
    client.portal.call(runtime.turns.drain)
    client.portal.call(runtime.pruner.drain)
    client.portal.call(runtime.deps.indexer.drain)


def run_sessions(settings, backend, kept: int, turns: int) -> dict:
    """`turns` turns on each session, then what a client can read back."""
    settings.inference_base_url = backend.base_url
    settings.checkpoints_kept = kept
    settings.recent_messages = 4
    settings.summary_trigger_messages = 6
    with TestClient(create_app(settings)) as client:
        for i in range(turns):
            for session in SESSIONS:
                r = client.post("/v1/chat/completions", headers={"X-Session-Id": session},
                                json={"messages": [{"role": "user", "content": f"{session} {i}: the dog is called "
                                                    f"Rex{i} and the ticket is {1000 + i}"}]})
                assert r.status_code == 200
        settle(client)
        read = {"counts": checkpoints_per_thread(settings)}
        for session in SESSIONS:
            body = client.get(f"/sessions/{session}/messages").json()
            read[session] = ([(m["role"], m["content"]) for m in body["messages"]], body["summary"])
            found = client.post("/memory/search", json={"query": f"ticket {1003} Rex3 {session}", "k": 5}).json()
            read[f"recall-{session}"] = sorted(hit["text"] for hit in found["results"])
        read["entities"] = sorted(e["name"] for e in client.get("/entities").json()["entities"])
        read["metrics"] = client.get("/metrics").text
    return read


def test_each_session_keeps_at_most_k_checkpoints_and_reads_the_same(profile, backend, tmp_path):
    kept = run_sessions(profile(), backend, kept=3, turns=12)
    everything = run_sessions(profile(data_dir=tmp_path / "all", chroma_dir=tmp_path / "c2"),
                              backend, kept=0, turns=12)
    assert set(kept["counts"]) == set(SESSIONS)
    assert all(n <= 3 for n in kept["counts"].values())
    assert all(n > 12 for n in everything["counts"].values())  # without the policy: one or more a turn
    for key in (*SESSIONS, *(f"recall-{s}" for s in SESSIONS), "entities"):
        assert kept[key] == everything[key], key
    messages, summary = kept["alpha"]
    assert summary and messages[-1] == ("assistant", "You said: alpha 11: the dog is called Rex11 and the ticket "
                                                     "is 1011")
    assert kept["recall-alpha"]  # recall found the older turns the summary folded away
    assert 'orchestrator_checkpoint_rows{table="checkpoints"} 6.0' in kept["metrics"]
    assert "orchestrator_checkpoint_bytes " in kept["metrics"]
    assert "orchestrator_checkpoints_pruned_total" in kept["metrics"]


def test_a_failed_turn_still_rolls_back_with_one_checkpoint_kept(profile, backend):
    settings = profile()
    settings.inference_base_url = backend.base_url
    settings.checkpoints_kept = 1
    with TestClient(create_app(settings)) as client:
        def turn(text: str):
            return client.post("/v1/chat/completions", headers={"X-Session-Id": "undo"},
                               json={"messages": [{"role": "user", "content": text}]})

        assert turn("first").status_code == 200 and turn("second").status_code == 200
        settle(client)
        backend.fail_with = 503
        try:
            assert turn("this one fails").status_code == 503
        finally:
            backend.fail_with = None
        settle(client)
        assert checkpoints_per_thread(settings) == {"undo": 1}
        contents = [m["content"] for m in client.get("/sessions/undo/messages").json()["messages"]]
        assert contents == ["first", "You said: first", "second", "You said: second"]
        assert turn("third").status_code == 200
        contents = [m["content"] for m in client.get("/sessions/undo/messages").json()["messages"]]
        assert contents[-2:] == ["third", "You said: third"] and len(contents) == 6
        assert client.get("/sessions/undo").json()["episodeCount"] == 3


class Inner(TypedDict):
    steps: Annotated[list[str], operator.add]


def nested_graph():
    """A graph with a subgraph, so that checkpoints and writes exist in a child namespace too."""
    inner = StateGraph(Inner)
    inner.add_node("work", lambda s: {"steps": ["inner"]})
    inner.add_edge(START, "work")
    inner.add_edge("work", END)
    child = inner.compile()

    outer = StateGraph(Inner)
    outer.add_node("first", lambda s: {"steps": ["outer"]})
    outer.add_node("child", child)
    outer.add_edge(START, "first")
    outer.add_edge("first", "child")
    outer.add_edge("child", END)
    return outer


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request, tmp_path):
    """(a saver, its retention store, Rows) on each checkpoint store, closed afterwards."""
    if request.param == "sqlite":
        path = tmp_path / "checkpoints.db"
        async with aiosqlite.connect(path) as conn:
            yield AsyncSqliteSaver(conn), SqliteCheckpointRetention(path), Rows(path)
        return
    url = request.getfixturevalue("postgres").database()
    saver = await open_pg_saver(url, max_size=2)
    try:
        yield saver, PgCheckpointRetention(url), Rows(url=url)
    finally:
        await saver.aclose()


@pytest.mark.anyio
async def test_prune_keeps_the_newest_k_with_their_writes_and_subgraph_rows(store):
    saver, retention, rows = store
    graph = nested_graph().compile(checkpointer=saver)
    for thread in ("t", "u"):
        for _ in range(5):  # every node's checkpoint and writes kept (durability="sync")
            await graph.ainvoke({"steps": []}, {"configurable": {"thread_id": thread}}, durability="sync",
                                subgraphs=True)
    cfg = {"configurable": {"thread_id": "t"}}
    before = await graph.aget_state(cfg)
    history = [s.config["configurable"]["checkpoint_id"] async for s in graph.aget_state_history(cfg)]
    namespaces = {ns for (ns,) in rows.all("SELECT DISTINCT checkpoint_ns FROM checkpoints")}
    u_rows = rows.one("SELECT COUNT(*) FROM checkpoints WHERE thread_id = 'u'")
    assert any(ns for ns in namespaces), "the subgraph wrote checkpoints of its own namespace"

    deleted = retention.prune("t", 3)
    assert retention.prune("t", 3) == 0  # idempotent
    retention.close()

    after = await graph.aget_state(cfg)
    assert after.values == before.values and after.config == before.config
    kept = [s.config["configurable"]["checkpoint_id"] async for s in graph.aget_state_history(cfg)]
    assert kept == history[:3] and deleted > 0
    oldest = kept[-1]
    assert rows.one("SELECT COUNT(*) FROM checkpoints WHERE thread_id = 't' AND checkpoint_id < %s", (oldest,)) == 0
    assert rows.one("SELECT COUNT(*) FROM {writes} w WHERE thread_id = 't' AND NOT EXISTS (SELECT 1 FROM "
                    "checkpoints c WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns "
                    "AND c.checkpoint_id = w.checkpoint_id)") == 0
    assert rows.one("SELECT COUNT(*) FROM checkpoints WHERE thread_id = 't' AND checkpoint_ns != ''"
                    ) > 0  # the subgraph rows of the kept steps stay
    assert rows.one("SELECT COUNT(*) FROM checkpoints WHERE thread_id = 'u'") == u_rows
    if isinstance(retention, PgCheckpointRetention):  # Postgres keeps channel values apart: none left unnamed
        assert rows.one("SELECT COUNT(*) FROM checkpoint_blobs b WHERE thread_id = 't' AND NOT EXISTS (SELECT 1 "
                        "FROM checkpoints c WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns "
                        "AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)") == 0
        assert rows.one("SELECT COUNT(*) FROM checkpoint_blobs WHERE thread_id = 'u'") > 0
    # The thread goes on from its newest checkpoint exactly as the unpruned one does.
    pruned = await graph.ainvoke({"steps": []}, cfg)
    untouched = await graph.ainvoke({"steps": []}, {"configurable": {"thread_id": "u"}})
    assert pruned == untouched and len(pruned["steps"]) > len(before.values["steps"])


def test_a_deleted_session_gives_its_pages_back_to_the_os(settings, backend):
    settings.inference_base_url = backend.base_url
    settings.checkpoints_kept = 0  # nothing pruned: only the delete frees pages
    big = "x" * 20_000
    with TestClient(create_app(settings)) as client:
        for i in range(20):
            assert client.post("/v1/chat/completions", headers={"X-Session-Id": "fat"},
                               json={"messages": [{"role": "user", "content": f"{i} {big}"}]}).status_code == 200
        settle(client)
        store = client.app.state.runtime.pruner.store
        assert store.auto_vacuum() == "incremental"  # set on the new file before its tables existed
        grown = settings.checkpoints_path.stat().st_size
        assert client.delete("/sessions/fat").status_code == 204
        settle(client)
        stats = store.stats()
        assert stats.checkpoints == 0 and stats.free_bytes <= store.reserve_bytes  # the rest went back
        assert settings.checkpoints_path.stat().st_size < grown - store.reserve_bytes / 2


def test_graphs_with_delta_channels_are_not_pruned(settings):
    class DeltaState(TypedDict):
        log: Annotated[list[str], DeltaChannel(operator.add)]

    delta = StateGraph(DeltaState)
    delta.add_node("n", lambda s: {"log": ["x"]})
    delta.add_edge(START, "n")
    assert uses_delta_channels(delta.compile())
    assert not uses_delta_channels(StateGraph(MessagesState).add_node("n", lambda s: {}).set_entry_point("n")
                                   .compile())
    deps = build_deps(settings, FakeChatModel([AIMessage("unused")]))
    try:
        assert not uses_delta_channels(build_graph(deps).compile())
    finally:
        deps.vectors.close()


def test_compact_prunes_the_postgres_checkpoints_to_keep(settings, backend, postgres):
    from server.compact import compact

    settings = settings.model_copy(update={"database_url": postgres.database()})
    before = run_sessions(settings, backend, kept=0, turns=4)  # nothing pruned while it ran
    assert all(n > 4 for n in before["counts"].values())
    out = io.StringIO()
    report = compact(settings, keep=2, out=out)
    assert "pruning 2 sessions of the Postgres checkpoints to their newest 2" in out.getvalue()
    assert report.threads == 2 and report.checkpoints_deleted == sum(before["counts"].values()) - 4
    assert checkpoints_per_thread(settings) == {"alpha": 2, "beta": 2}
    with TestClient(create_app(settings)) as client:  # the sessions read as before
        for session in SESSIONS:
            body = client.get(f"/sessions/{session}/messages").json()
            assert ([(m["role"], m["content"]) for m in body["messages"]], body["summary"]) == before[session]
