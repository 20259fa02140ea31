"""Several workers' indexers on one Postgres database: each claims its batch of pending episodes (`FOR UPDATE
SKIP LOCKED`, stamped with a lease), so each episode is embedded exactly once, and a crashed worker's claim
expires. Real Postgres (a throwaway cluster), real Chroma, the packaged MiniLM model."""

from __future__ import annotations

import asyncio
import threading

import pytest

from memory.episodes import Episode, EpisodeStore
from memory.indexer import Indexer
from memory.pg import PgDatabase
from memory.vector_process import VectorIndex

PLACES = ["harbour", "orchard", "quarry", "lighthouse", "bakery", "observatory", "greenhouse", "vineyard"]


@pytest.fixture
def workers(postgres):
    """Two workers' episode stores: one Postgres database, a pool each."""
    url = postgres.database()
    stores = [EpisodeStore(PgDatabase(url, max_size=2)) for _ in range(2)]
    yield stores
    for store in stores:
        store.db.close()


def fill(store: EpisodeStore, n: int) -> list[str]:
    """`n` committed episodes; their user texts (what the indexer embeds), each different."""
    texts = [f"note {i}: the key of the {PLACES[i % len(PLACES)]} is in box {i * 7}" for i in range(n)]
    for i, text in enumerate(texts):
        store.add(Episode(f"s{i % 3}", "default", text, "Noted.", ai_msg_id=f"ai{i}"))
    return texts


@pytest.mark.anyio
async def test_two_indexers_on_one_postgres_embed_each_episode_once(workers, tmp_path, embedder):  # noqa: F811
    texts = fill(workers[0], 90)
    vectors = VectorIndex(tmp_path / "chroma")  # the shared vector store (a Chroma server across machines)
    encoded: list[str] = []
    lock = threading.Lock()
    original = embedder._encode

    def counting(batch: list[str]) -> list[list[float]]:
        with lock:
            encoded.extend(batch)
        return original(batch)

    embedder._encode = counting
    try:
        indexers = [Indexer(store, vectors, embedder, batch=8, idle_delay=0.0, step_delay=0.0)
                    for store in workers]
        for indexer in indexers:  # both start at once, each on its own thread, as two workers would
            indexer.schedule()
        await asyncio.gather(*(indexer.drain() for indexer in indexers))
    finally:
        embedder._encode = original
    assert sorted(encoded) == sorted(texts)  # every episode embedded, none twice
    assert workers[1].pending(100) == [] and workers[0].pending(100) == []
    ids = {e.id for e in workers[0].for_session("s0", 100)}
    found = {h.id for h in vectors.query("default", embedder.embed_one(texts[0]), 100)}
    assert ids <= found
    vectors.close()


def test_a_claimed_or_locked_batch_is_skipped_by_the_other_worker(workers):
    a, b = workers
    texts = fill(a, 12)
    first, second = a.claim(5), b.claim(5)
    assert [e.user_text for e in first] == texts[:5] and [e.user_text for e in second] == texts[5:10]
    # A claim in progress (its row locked, not yet committed) is skipped, not waited for.
    got: list = []
    with a.db.transaction() as conn:
        conn.execute("SELECT seq FROM episodes WHERE claimed_at IS NULL ORDER BY seq LIMIT 1 FOR UPDATE")
        other = threading.Thread(target=lambda: got.extend(b.claim(5)))
        other.start()
        other.join(timeout=20)
        assert not other.is_alive(), "a claim waited for another worker's locked rows"
    assert [e.user_text for e in got] == texts[11:]
    assert [e.user_text for e in b.claim(5)] == texts[10:11]  # the lock was let go without a claim: free
    assert a.claim(5) == b.claim(5) == []


def test_a_crashed_worker_s_claim_expires_and_a_released_one_is_free_at_once(workers):
    a, b = workers
    fill(a, 4)
    crashed = a.claim(2)  # the worker dies before marking them
    assert [e.id for e in b.claim(10)] == [e.id for e in a.pending(10)][2:]  # the other two only
    b.release([e.id for e in a.pending(10)][2:])  # its embedding failed: given back
    late = EpisodeStore(b.db, claim_seconds=0.0)  # a worker for which every claim has expired
    taken = late.claim(10)
    assert {e.id for e in taken} == {e.id for e in a.pending(10)}
    late.mark_indexed(taken)
    assert a.pending(10) == [] and crashed
