"""Pre-seed a benchmark store (DATA_DIR/memory.db + CHROMA_DIR) with synthetic episodes, as the service would.

Two ways to add episodes:
- `seed_embedded`: real MiniLM embeddings through `Indexer.index_batch` (what the service does).
- `seed_filler`: cheap vectors (a stored real embedding plus small noise, renormalised) for scale-only runs
  where embedding 100k texts on a 2-core CPU would take ~15 minutes. Texts and FTS5 rows are real.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import synthetic_exchange
from bench.service import store_dirs
from graph.config import DEFAULT_SCOPE
from memory.db import SqliteDatabase
from memory.embedder import Embedder
from memory.episodes import CONTEXT_INDEXED, Episode, EpisodeStore
from memory.indexer import Indexer
from memory.vectors import ChromaVectors

SESSIONS = 200  # episodes are spread over this many earlier sessions
DAY = 86400.0


@dataclass
class Stores:
    """The memory stores of one benchmark workdir, opened in this process."""

    db: SqliteDatabase
    episodes: EpisodeStore
    vectors: ChromaVectors  # in-process: seeding happens before the service starts
    embedder: Embedder
    indexer: Indexer

    def close(self) -> None:
        """Close SQLite (Chroma's client has no close; the process should exit afterwards)."""
        self.db.close()


def open_stores(workdir: Path, batch: int = 128) -> Stores:
    """Open (or create) the stores exactly where the service will look for them."""
    data, chroma = store_dirs(workdir)
    db = SqliteDatabase(data / "memory.db")
    episodes = EpisodeStore(db)
    vectors = ChromaVectors(chroma)
    embedder = Embedder()
    embedder.load()
    indexer = Indexer(episodes, vectors, embedder, batch=batch, by="context-idle")  # as the service's default
    return Stores(db, episodes, vectors, embedder, indexer)


def _episodes(rng: random.Random, start: int, n: int) -> list[Episode]:
    now = time.time()
    out = []
    for i in range(start, start + n):
        user, reply = synthetic_exchange(rng)
        out.append(Episode(session_id=f"seed-{i % SESSIONS}", scope=DEFAULT_SCOPE, user_text=user,
                           assistant_text=reply, user_msg_id=f"seed-u-{i}", ai_msg_id=f"seed-a-{i}",
                           created_at=now - rng.uniform(0, 365 * DAY)))
    return out


def seed_embedded(stores: Stores, n: int, rng: random.Random) -> dict[str, float]:
    """Add `n` episodes and embed them with `Indexer.index_batch`; returns the seconds spent on each step."""
    start = stores.episodes.count()
    t0 = time.perf_counter()
    for episode in _episodes(rng, start, n):
        stores.episodes.add(episode)
    t1 = time.perf_counter()
    while stores.indexer.index_batch() > 0:
        pass
    t2 = time.perf_counter()
    return {"episodes": n, "sqlite_insert_s": round(t1 - t0, 2), "embed_index_s": round(t2 - t1, 2),
            "docs_per_s": round(n / max(t2 - t1, 1e-9), 1)}


def seed_filler(stores: Stores, n: int, rng: random.Random, chunk: int = 2000) -> dict[str, float]:
    """Add `n` episodes whose vectors are noisy copies of stored real embeddings (see module docstring)."""
    pool = stores.vectors._collection(DEFAULT_SCOPE).get(limit=2000, include=["embeddings"])["embeddings"]
    pool = np.asarray(pool, dtype=np.float32)
    if len(pool) == 0:
        raise RuntimeError("seed_filler needs some real embeddings first (run seed_embedded)")
    nprng = np.random.default_rng(rng.randint(0, 2**31))
    start = stores.episodes.count()
    t_sql = t_vec = 0.0
    done = 0
    while done < n:
        batch = _episodes(rng, start + done, min(chunk, n - done))
        t0 = time.perf_counter()
        for episode in batch:
            stores.episodes.add(episode)
        t1 = time.perf_counter()
        vecs = pool[nprng.integers(0, len(pool), len(batch))] + nprng.normal(0, 0.02, (len(batch), pool.shape[1]))
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        stores.vectors.add(DEFAULT_SCOPE, [e.id for e in batch], vecs.tolist(), [e.document for e in batch])
        stores.episodes.mark_indexed(batch, CONTEXT_INDEXED)  # for good: the service never refines them
        t_sql += t1 - t0
        t_vec += time.perf_counter() - t1
        done += len(batch)
    return {"episodes": n, "sqlite_insert_s": round(t_sql, 2), "vector_insert_s": round(t_vec, 2)}
