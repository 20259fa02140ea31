"""A stored reply cut back to what its user heard (realtime barge-in after the reply was complete): the episode
store's rewrite and removal over real SQLite + FTS5 and Postgres (the `database` fixture) and Chroma, and
TurnRunner.truncate_reply over a real checkpointer and memory."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import HumanMessage

from graph.config import DEFAULT_SCOPE
from memory.episodes import Episode, EpisodeStore
from memory.fts5 import FTS_TABLES
from memory.indexer import Indexer
from memory.vector_process import VectorIndex
from server.turns.runner import TurnRequest, TurnRunner
from tests.fakes import FakeChatModel, contract
from tests.unit.test_episode_commit import TurnCounts
from tests.unit.test_graph import cfg

WHOLE = "The lighthouse keeper fed the gulls. Then a zeppelin dropped marmalade."
HEARD = "The lighthouse keeper fed the gulls."


def index_tables(store: EpisodeStore) -> tuple[str, ...]:
    """Where the episodes' lexical index lives: the FTS5 tables, or the episodes' own `terms` on Postgres."""
    return FTS_TABLES if store.db.dialect == "sqlite" else ("episodes",)


def fts_documents(store: EpisodeStore, seq_of: str) -> dict[str, list[str]]:
    """The documents each lexical index holds for the episode with this id (on Postgres: the document whose
    `terms` are indexed, if they are those of its text)."""
    if store.db.dialect == "postgres":
        return {"episodes": [r["document"] for r in store.db.query(
            f"SELECT document FROM episodes WHERE id = ? AND terms = to_tsvector('{store.lexical.config}', document)",
            (seq_of,))]}
    return {table: [r["document"] for r in store.db.query(
        f"SELECT document FROM {table} WHERE rowid IN (SELECT seq FROM episodes WHERE id = ?)", (seq_of,))]
        for table in FTS_TABLES}


@pytest.mark.anyio
async def test_a_rewritten_reply_moves_its_fts_rows_and_is_embedded_again(database, tmp_path,
                                                                          embedder):  # noqa: F811
    store = EpisodeStore(database)
    vectors = VectorIndex(tmp_path / "chroma")
    store.add(Episode("s1", "default", "tell me about the lighthouse", WHOLE, ai_msg_id="ai1"))
    store.add(Episode("s2", "default", "what is for dinner", "Soup.", ai_msg_id="ai2"))
    indexer = Indexer(store, vectors, embedder, by="exchange")
    indexer.schedule()
    await indexer.drain()
    episode = store.by_reply("ai1")
    assert episode is not None and store.pending(10) == []
    vectors.delete(episode.scope, [episode.id])  # the caller drops the old vector first (server/turns/truncate.py)
    rewritten = store.rewrite_reply("ai1", HEARD)
    assert rewritten is not None and rewritten.id == episode.id
    assert rewritten.document.endswith(f"Assistant: {HEARD}")
    # Both FTS5 tables (or the Postgres terms) hold the new text: the tail's words find nothing, the heard ones
    # the episode.
    assert fts_documents(store, episode.id) == {t: [rewritten.document] for t in index_tables(store)}
    assert store.search("default", "zeppelin marmalade", 5) == []
    assert [h.id for h in store.search("default", "lighthouse keeper gulls", 5)] == [episode.id]
    # Its vector is gone until the indexer embeds it again, from the new text.
    query = embedder.embed_one("tell me about the lighthouse keeper")
    assert episode.id not in [h.id for h in vectors.query("default", query, 5)]
    assert [e.id for e in store.pending(10)] == [episode.id]
    indexer.schedule()
    await indexer.drain()
    assert store.pending(10) == []
    assert vectors.query("default", query, 1)[0].id == episode.id
    assert store.rewrite_reply("nobody", HEARD) is None
    vectors.close()


def test_an_episode_rewritten_while_it_was_embedded_stays_pending(database):
    store = EpisodeStore(database)
    store.add(Episode("s1", "default", "tell me about the lighthouse", WHOLE, ai_msg_id="ai1"))
    batch = store.pending(10)  # the indexer read the row with the whole reply...
    store.rewrite_reply("ai1", HEARD)  # ...the reply was cut meanwhile...
    store.mark_indexed(batch)  # ...and its old vector was written
    pending = store.pending(10)
    assert [e.id for e in pending] == [batch[0].id] and pending[0].document.endswith(f"Assistant: {HEARD}")


def test_a_removed_reply_takes_its_episode_fts_rows_and_turn_count(database):
    store, counts = EpisodeStore(database), TurnCounts(database)
    for i in range(2):
        store.add(Episode("s1", "default", f"question {i} about the lighthouse", WHOLE, ai_msg_id=f"ai{i}"),
                  committed=False)
        store.commit_session("s1", [f"ai{i}"], counts.add("s1"))
    assert counts["s1"] == 2
    gone = store.by_reply("ai1")
    assert gone is not None
    removed = store.remove_reply("ai1", counts.add("s1", -1))
    assert removed is not None and removed.id == gone.id
    assert fts_documents(store, gone.id) == {t: [] for t in index_tables(store)}
    assert store.by_reply("ai1") is None and store.by_reply("ai0") is not None
    assert [e.user_text for e in store.for_session("s1")] == ["question 0 about the lighthouse"]
    assert [h.ai_msg_id for h in store.search("default", "zeppelin", 5)] == ["ai0"]
    assert counts["s1"] == 1
    assert store.remove_reply("ai1") is None


@pytest.mark.anyio
async def test_the_turn_engine_cuts_a_stored_reply_to_what_was_heard(settings, compiled):  # noqa: F811
    model = FakeChatModel([contract("first reply"), contract(WHOLE), contract("and the next")])
    deps, graph = await compiled(model)
    await asyncio.to_thread(deps.sessions.create, "voice", "named", None)  # no naming call takes a reply
    runner = TurnRunner(graph, deps)
    finals = []
    for text in ("first", "tell me about the lighthouse"):
        events = [e async for e in runner.events(TurnRequest("voice", [HumanMessage(text)]))]
        finals.append(events[-1].reply)
    first, reply = finals
    assert reply.text == WHOLE
    # Not the session's last message: history behind a later turn is not rewritten.
    assert await runner.truncate_reply("voice", first.id, "first") == "unchanged"
    assert await runner.truncate_reply("voice", reply.id, WHOLE) == "unchanged"  # heard whole
    assert await runner.truncate_reply("voice", reply.id, HEARD) == "truncated"
    messages = (await graph.aget_state(cfg("voice"))).values["messages"]
    assert [(m.id, m.text) for m in messages][-1] == (reply.id, HEARD)
    assert messages[-1].response_metadata["interrupted"] is True
    hits = await asyncio.to_thread(deps.episodes.search, DEFAULT_SCOPE, "lighthouse keeper", 5)
    assert [h.ai_msg_id for h in hits] == [reply.id] and hits[0].document.endswith(HEARD)
    assert await asyncio.to_thread(deps.episodes.search, DEFAULT_SCOPE, "zeppelin marmalade", 5) == []
    # Nothing heard: the turn goes whole, user message, episode and count.
    assert await runner.truncate_reply("voice", reply.id, "") == "removed"
    messages = (await graph.aget_state(cfg("voice"))).values["messages"]
    assert [m.text for m in messages] == ["first", "first reply"]
    assert await asyncio.to_thread(deps.episodes.by_reply, reply.id) is None
    assert (await asyncio.to_thread(deps.sessions.get, "voice"))["turn_count"] == 1
    # The next turn reads the session as it now is.
    [e async for e in runner.events(TurnRequest("voice", [HumanMessage("again")]))]
    await runner.drain()
    assert "first reply" in model.prompt_text(-1) and "zeppelin" not in model.prompt_text(-1)
