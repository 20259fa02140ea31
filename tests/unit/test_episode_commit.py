"""Uncommitted episodes (a turn whose checkpoint is not saved yet) are invisible; commit and start-up repair
make the episodes agree with the checkpoints. Real SQLite, a real checkpointer, a fake chat model."""

from __future__ import annotations

import dataclasses

import aiosqlite
import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from graph.builder import build_graph
from memory.db import SqliteDatabase
from memory.episodes import SCHEMA, Episode, EpisodeStore
from memory.sessions import SessionStore
from server.runtime import build_deps
from server.turns.commit import reconcile
from tests.fakes import FakeChatModel, contract


@pytest.fixture
def stores(tmp_path) -> tuple[EpisodeStore, SessionStore]:
    db = SqliteDatabase(tmp_path / "memory.db")
    return EpisodeStore(db), SessionStore(db)


def counted(session_id: str):
    return lambda conn, turns: SessionStore.count_turns(conn, session_id, turns)


def test_an_uncommitted_episode_is_invisible_until_committed(stores):
    episodes, sessions = stores
    sessions.ensure("s", None)
    episode = Episode("s", "default", "the parrot is called Kiwi", "Noted.", ai_msg_id="ai-1")
    episodes.add(episode, committed=False)
    assert episodes.search("default", "parrot Kiwi", 5) == []
    assert episodes.pending(10) == [] and episodes.for_session("s") == []
    assert episodes.get_many([episode.id]) == {} and episodes.ids_by_scope("s") == {}
    assert episodes.uncommitted() == {"s": ["ai-1"]}

    assert episodes.commit_session("s", ["ai-other"], counted("s")) == 0  # another turn's reply: not this one
    assert episodes.commit_session("s", ["ai-1"], counted("s")) == 1
    assert [e.id for e in episodes.search("default", "parrot Kiwi", 5)] == [episode.id]
    assert [e.id for e in episodes.pending(10)] == [episode.id]
    assert episodes.uncommitted() == {} and sessions.get("s")["turn_count"] == 1


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
