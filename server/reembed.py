"""`orchestrator reembed`: embed the whole memory store again with the configured model (EMBEDDING_MODEL_PATH).

The way out of the start-up refusal of memory/embedding_identity.py. With the service stopped (the command
holds DATA_DIR's and CHROMA_DIR's locks as the service does, and is refused while it runs): every scope's
episode and entity collections are dropped (another model may not even have the same dimensions), every
episode is embedded again in the indexer's batches with a progress bar, then every entity; the semantic cache,
whose entries are keyed by query vectors, is emptied; and only then is the new model recorded, so a re-embed
cut half-way is simply run again (the service keeps refusing the store until it completes).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from tqdm import tqdm

from config.settings import Settings
from graph.wiring import build_deps
from memory import embedding_identity
from memory.datadir_lock import DirectoryLock
from memory.entities import vector_key
from memory.indexer import BULK_THREADS


@dataclass(frozen=True)
class ReembedReport:
    """What a re-embed did."""

    model: str
    previous: str | None
    episodes: int
    entities: int


def reembed(settings: Settings, out: TextIO = sys.stderr) -> ReembedReport:
    """Embed every episode and entity of the store anew with the configured model; raises RuntimeError if the
    service holds the data directories."""
    locks = [DirectoryLock(settings.data_dir, "DATA_DIR"), DirectoryLock(settings.chroma_dir, "CHROMA_DIR")]
    held: list[DirectoryLock] = []
    try:
        for lock in locks:
            lock.acquire()
            held.append(lock)
        deps = build_deps(settings)
        try:
            return _reembed(deps, out)
        finally:
            deps.vectors.close()
            deps.episodes.db.close()
    finally:
        for lock in held:
            lock.release()


def _reembed(deps, out: TextIO) -> ReembedReport:
    db = deps.episodes.db
    previous = embedding_identity.stored_identity(db)
    configured = embedding_identity.identity_of(deps.embedder.model_path)
    deps.embedder.load()
    print(f"re-embedding the store with {configured} (was {previous or 'not recorded'})", file=out, flush=True)
    episode_scopes = [r["scope"] for r in db.query("SELECT DISTINCT scope FROM episodes")]
    entity_scopes = [r["scope"] for r in db.query("SELECT DISTINCT scope FROM entities")]
    deps.vectors.drop(*episode_scopes, *(vector_key(s) for s in entity_scopes))
    with db.transaction() as conn:
        conn.execute("UPDATE episodes SET indexed = 0")
        conn.execute("DELETE FROM semantic_cache")
    total = int(db.query("SELECT count(*) AS n FROM episodes WHERE committed = 1")[0]["n"])
    done = 0
    with tqdm(total=total, unit="episode", file=out, mininterval=0.2) as bar:
        while n := deps.indexer.index_batch(BULK_THREADS):  # the service is stopped: every core
            done += n
            bar.update(n)
    entities = 0
    for scope in entity_scopes:
        found = deps.entities.list(scope)
        if found:
            vectors = deps.embedder.embed_background([e.document for e in found], BULK_THREADS)
            deps.vectors.add(vector_key(scope), [e.id for e in found], vectors, [e.document for e in found])
            entities += len(found)
    embedding_identity.record(db, configured)
    return ReembedReport(str(configured), str(previous) if previous else None, done, entities)
