"""Uncommitted episodes (a turn whose checkpoint is not saved yet) are invisible; commit and start-up repair
make the episodes agree with the checkpoints. The store's tests run on both dialects (the `database` fixture:
SQLite, then Postgres); repair on a real checkpointer with a fake chat model."""

from __future__ import annotations

import dataclasses
import time

import aiosqlite
import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from graph.builder import build_graph
from memory.db import Database, SqliteDatabase
from memory.episodes import Episode, EpisodeStore
from memory.fts5 import SCHEMA
from server.runtime import build_deps
from server.turns.commit import reconcile
from tests.fakes import FakeChatModel, contract


class TurnCounts:
    """What the server's `SessionStore.count_turns` does inside a commit's transaction, on a table of its own
    (the session store is SQLite's until its Postgres schema lands): a count that exists exactly when the
    commit does."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript("CREATE TABLE IF NOT EXISTS counted (session_id TEXT PRIMARY KEY, turns INTEGER NOT NULL)")

    def add(self, session_id: str, turns: int = 1):
        """A callback adding `turns` to the session's count, inside the caller's transaction."""
        return lambda conn, n=turns: conn.execute(
            "INSERT INTO counted (session_id, turns) VALUES (?, ?)"
            " ON CONFLICT (session_id) DO UPDATE SET turns = counted.turns + excluded.turns", (session_id, n))

    def __getitem__(self, session_id: str) -> int:
        rows = self.db.query("SELECT turns FROM counted WHERE session_id = ?", (session_id,))
        return int(rows[0]["turns"]) if rows else 0


@pytest.fixture
def stores(database) -> tuple[EpisodeStore, TurnCounts]:
    return EpisodeStore(database), TurnCounts(database)


def test_an_uncommitted_episode_is_invisible_until_committed(stores):
    episodes, counts = stores
    episode = Episode("s", "default", "the parrot is called Kiwi", "Noted.", ai_msg_id="ai-1")
    episodes.add(episode, committed=False)
    assert episodes.search("default", "parrot Kiwi", 5) == []
    assert episodes.pending(10) == [] and episodes.for_session("s") == []
    assert episodes.get_many([episode.id]) == {} and episodes.ids_by_scope("s") == {}
    assert episodes.uncommitted() == {"s": ["ai-1"]}

    assert episodes.commit_session("s", ["ai-other"], counts.add("s")) == 0  # another turn's reply: not this one
    assert episodes.commit_session("s", ["ai-1"], counts.add("s")) == 1
    assert [e.id for e in episodes.search("default", "parrot Kiwi", 5)] == [episode.id]
    assert [e.id for e in episodes.pending(10)] == [episode.id]
    assert episodes.uncommitted() == {} and counts["s"] == 1
    assert episodes.commit_session("s", ["ai-1"], counts.add("s")) == 0 and counts["s"] == 1  # once only


def test_repair_beside_other_workers_leaves_young_uncommitted_episodes_alone(stores):
    """On a shared store, start-up repair looks only at episodes older than a bound: a younger one may be
    another worker's turn between `persist` and its checkpoint."""
    episodes, _ = stores
    episodes.add(Episode("s", "default", "an old crash", "ok", ai_msg_id="ai-old"), committed=False)
    bound = time.time()
    while time.time() <= bound:  # what is stored from now on is younger than the bound
        time.sleep(0.001)
    # A live import: its exchanges are dated long ago, but it is being stored now.
    episodes.add_uncommitted([Episode("s", "default", "a live import", "ok", ai_msg_id="ai-live", created_at=1e9)])
    assert episodes.uncommitted(before=bound) == {"s": ["ai-old"]}
    assert episodes.discard_uncommitted("s", before=bound) == 1
    assert episodes.uncommitted() == {"s": ["ai-live"]}


def test_a_discarded_episode_is_gone_and_committed_ones_stay(stores):
    episodes, _ = stores
    kept = Episode("s", "default", "kept words", "ok")
    episodes.add(kept)
    episodes.add(Episode("s", "default", "failed words", "ok", ai_msg_id="ai-2"), committed=False)
    assert episodes.discard_uncommitted("s") == 1
    assert episodes.uncommitted() == {} and [e.id for e in episodes.for_session("s")] == [kept.id]
    assert episodes.search("default", "failed", 5) == []


def test_a_store_made_before_the_column_keeps_its_episodes_committed(tmp_path):
    db = SqliteDatabase(tmp_path / "old.db")
    db.executescript(SCHEMA.replace(",\n    committed INTEGER NOT NULL DEFAULT 1", ""))
    db.executescript("INSERT INTO episodes (id, session_id, scope, user_text, assistant_text, document,"
                     " created_at) VALUES ('e1', 's', 'default', 'u', 'a', 'doc', 0)")
    store = EpisodeStore(db)
    assert store.uncommitted() == {} and [e.id for e in store.pending(5)] == ["e1"]


@pytest.mark.anyio
async def test_start_up_repair_commits_what_the_checkpoint_holds_and_deletes_the_rest(settings):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    model = FakeChatModel([contract("Noted, Kiwi."), contract("Noted, Mango.")])
    deps = dataclasses.replace(build_deps(settings, model), commit_after_checkpoint=True)
    conn = await aiosqlite.connect(settings.checkpoints_path)
    try:
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        graph = build_graph(deps).compile(checkpointer=saver)
        # A turn whose checkpoint was saved but whose commit never ran (the process died in between).
        await graph.ainvoke({"messages": [HumanMessage("the parrot is called Kiwi")]},
                            {"configurable": {"thread_id": "saved"}})
        # A turn cut before its checkpoint: its episode exists, no checkpoint holds its reply.
        deps.episodes.add(Episode("cut", "default", "the cat is called Mango", "Noted.", ai_msg_id="ai-cut"),
                          committed=False)
        assert deps.episodes.search("default", "Kiwi", 5) == []  # neither is memory yet
        assert await reconcile(graph, deps) == (1, 1)
        assert [e.session_id for e in deps.episodes.search("default", "parrot Kiwi", 5)] == ["saved"]
        assert deps.episodes.search("default", "cat Mango", 5) == []
        assert deps.episodes.uncommitted() == {} and deps.sessions.get("saved")["turn_count"] == 1
        assert await reconcile(graph, deps) == (0, 0)  # a second start-up finds nothing to do
    finally:
        await conn.close()
        deps.vectors.close()
