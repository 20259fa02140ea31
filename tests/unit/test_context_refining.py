"""Context vectors made when the service is idle (EPISODE_EMBEDDING=context-idle, memory/indexer.py) and the
sessions' spread over the recalled places (memory/hybrid.py `spread_sessions`), on real SQLite or Postgres,
real Chroma and the packaged MiniLM model."""

from __future__ import annotations

import asyncio
import time

import pytest

from memory.embedder import Embedder
from memory.episodes import CONTEXT_INDEXED, INDEXED, UNINDEXED, Episode, EpisodeStore, StoredEpisode
from memory.hybrid import FusedHit, spread_sessions
from memory.indexer import Indexer
from memory.vector_process import VectorIndex

FIRST = ("I started a pottery class on Tuesdays", "Fun! What are you making?")
SECOND = ("Guess what I made there", "A bowl?")


@pytest.fixture
def vectors(tmp_path):
    index = VectorIndex(tmp_path / "chroma")
    yield index
    index.close()


def levels(store: EpisodeStore) -> list[int]:
    return [r["indexed"] for r in store.db.query("SELECT indexed FROM episodes ORDER BY seq")]


def similarity_to(vectors: VectorIndex, embedder: Embedder, episode: StoredEpisode, text: str) -> float:
    """The cosine between the episode's stored vector and `text`'s (1.0: the vector is `text`'s)."""
    hit = next(h for h in vectors.query("default", embedder.embed([text])[0], 10) if h.id == episode.id)
    return hit.similarity


def live_turn(store: EpisodeStore, embedder: Embedder, user: str, reply: str, at: float) -> None:
    """What a turn does: recall embeds the user's message as its query, then persist writes the episode."""
    embedder.embed_one(user)
    store.add(Episode("s1", "default", user, reply, ai_msg_id=f"ai{at}", created_at=at))


async def wait_for(predicate, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.anyio
async def test_a_turns_episode_gets_its_message_vector_at_once_and_its_context_vector_once_idle(
        database, vectors, embedder):
    store = EpisodeStore(database)
    live_turn(store, embedder, *FIRST, at=0)
    live_turn(store, embedder, *SECOND, at=1)
    encoded: list[str] = []
    original = embedder._encode
    embedder._encode = lambda texts: encoded.extend(texts) or original(texts)
    indexer = Indexer(store, vectors, embedder, by="context-idle", refine_idle=60.0)
    try:
        indexer.schedule()
        await indexer.drain()  # a drain does not wait for refining
        assert encoded == []  # both vectors were the queries' own: no embedding on the turns' account
        assert levels(store) == [INDEXED, INDEXED]
        first, second = store.for_session("s1")
        assert similarity_to(vectors, embedder, second, SECOND[0]) > 0.999

        indexer.refine_idle = 0.3
        indexer.schedule()  # the next turn's schedule; then nothing for refine_idle seconds
        await wait_for(lambda: levels(store) == [CONTEXT_INDEXED, CONTEXT_INDEXED])
    finally:
        embedder._encode = original
    context = f"{second.document}\n{first.document}"
    assert context in encoded and first.document in encoded
    assert similarity_to(vectors, embedder, second, context) > 0.999  # replaced, under the same id
    assert len(vectors.query("default", embedder.embed_one("pottery"), 10)) == 2


@pytest.mark.anyio
async def test_refining_waits_while_turns_keep_finishing(database, vectors, embedder):
    store = EpisodeStore(database)
    indexer = Indexer(store, vectors, embedder, by="context-idle", refine_idle=0.5, idle_delay=0.05)
    for i in range(8):  # a turn every 0.15 s for 1.2 s: never half a second without one
        live_turn(store, embedder, f"message number {i} about lighthouses", f"reply {i}", at=i)
        indexer.schedule()
        await asyncio.sleep(0.15)
        assert CONTEXT_INDEXED not in levels(store)
    await wait_for(lambda: levels(store) == [CONTEXT_INDEXED] * 8)


@pytest.mark.anyio
async def test_an_episode_with_no_query_vector_gets_its_context_vector_at_once(database, vectors, embedder):
    store = EpisodeStore(database)  # an import, a re-embedding, a crash's leftovers: nothing to reuse
    store.add(Episode("imported", "default", "We adopted a beagle named Max", "Congratulations!", created_at=0))
    indexer = Indexer(store, vectors, embedder, by="context-idle", refine_idle=60.0)
    indexer.schedule()
    await indexer.drain()
    assert levels(store) == [CONTEXT_INDEXED]


def test_a_rewritten_or_moved_episode_is_not_marked_refined(database, vectors, embedder):
    store = EpisodeStore(database)
    live_turn(store, embedder, "tell me about the lighthouse", "It is 40 m tall and was built in 1890.", at=0)
    live_turn(store, embedder, "and the keeper?", "He lived there alone.", at=1)
    indexer = Indexer(store, vectors, embedder, by="context-idle")
    assert indexer.index_batch() == 2 and levels(store) == [INDEXED, INDEXED]
    batch = store.claim(8, level=INDEXED)  # a refining pass read both rows...
    store.rewrite_reply("ai0", "It is 40 m tall")  # ...one reply was cut meanwhile...
    store.move_session("s1", "project:other")  # ...and the session moved to a project
    store.mark_indexed(batch, CONTEXT_INDEXED, was=INDEXED)
    assert levels(store) == [UNINDEXED, UNINDEXED]  # both are indexed again, in their new scope
    assert indexer.index_batch() == 2 and indexer.refine_batch() == 2
    assert levels(store) == [CONTEXT_INDEXED, CONTEXT_INDEXED]
    assert len(vectors.query("project:other", embedder.embed_one("lighthouse"), 10)) == 2


def hit(episode_id: str, session: str) -> FusedHit:
    return FusedHit(StoredEpisode(episode_id, session, "default", episode_id, None, 0.0), None, None)


def test_the_last_places_go_to_sessions_not_yet_recalled():
    hits = [hit(f"a{i}", "A") for i in range(9)] + [hit("b0", "B"), hit("a9", "A"), hit("c0", "C")]
    assert [h.episode.id for h in spread_sessions(hits, 10, 0.2)] == [f"a{i}" for i in range(8)] + ["b0", "c0"]
    assert [h.episode.id for h in spread_sessions(hits, 10, 0.0)] == [h.episode.id for h in hits[:10]]
    one_session = [hit(f"a{i}", "A") for i in range(12)]
    assert spread_sessions(one_session, 10, 0.2) == one_session[:10]  # nothing else to give the places to
    assert [h.episode.id for h in spread_sessions(hits, 5, 0.2)] == ["a0", "a1", "a2", "a3", "b0"]
    assert [h.episode.id for h in spread_sessions(hits, 5, 0.3)] == ["a0", "a1", "a2", "a3", "b0"]  # 1.5 → 1
    spread = spread_sessions(hits, 10, 0.3)  # 3 places, 2 sessions to give them to: the third by score
    assert [h.episode.id for h in spread] == [f"a{i}" for i in range(7)] + ["b0", "c0", "a7"]
    assert spread_sessions(hits[:3], 10, 0.2) == hits[:3]


def test_bulk_embedding_on_several_threads_gives_each_text_its_own_vector(embedder):
    texts = [f"note {i}: the {word} was left by the door" for i, word in
             enumerate(["umbrella", "bicycle", "parcel", "guitar", "ladder", "kettle", "lantern"])]
    serial, parallel = embedder.embed_background(texts), embedder.embed_background(texts, parallel=3)
    assert len(parallel) == len(texts)
    for one, other in zip(serial, parallel, strict=True):
        assert sum(a * b for a, b in zip(one, other, strict=True)) > 0.9999  # same text, same place
