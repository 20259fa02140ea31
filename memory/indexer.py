"""Moves episode embedding off the reply's critical path, durably.

An episode row is written to SQLite with `indexed = 0` before the reply completes; this worker embeds
pending rows in batches and marks them indexed. Rows left pending by a crash are picked up on the next
start (`schedule()` in the lifespan), so the vector index always catches up with SQLite.
"""

from __future__ import annotations

import asyncio
import logging

from memory.embedder import Embedder
from memory.episodes import EpisodeStore
from memory.vectors import VectorIndex

log = logging.getLogger(__name__)


class Indexer:
    """One background task per event loop drains the pending episodes."""

    def __init__(self, episodes: EpisodeStore, vectors: VectorIndex, embedder: Embedder, batch: int = 32) -> None:
        self.episodes = episodes
        self.vectors = vectors
        self.embedder = embedder
        self.batch = batch
        self._task: asyncio.Task | None = None
        self._again = False

    def schedule(self) -> None:
        """Start draining (or drain again after the running pass). Never blocks."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def drain(self) -> None:
        """Wait until everything scheduled so far is indexed."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                while await asyncio.to_thread(self.index_batch) == self.batch:
                    pass
            except Exception:  # the rows stay pending and are retried on the next schedule
                log.exception("indexing episodes failed; they stay pending and will be retried")
                return
            if not self._again:
                return

    def index_batch(self) -> int:
        """Embed and index one batch of pending episodes; returns how many were indexed."""
        pending = self.episodes.pending(self.batch)
        if not pending:
            return 0
        vectors = self.embedder.embed([e.document for e in pending])
        by_scope: dict[str, list[int]] = {}
        for i, episode in enumerate(pending):
            by_scope.setdefault(episode.scope, []).append(i)
        for scope, rows in by_scope.items():
            self.vectors.add(
                scope,
                [pending[i].id for i in rows],
                [vectors[i] for i in rows],
                [pending[i].document for i in rows],
            )
        self.episodes.mark_indexed([e.id for e in pending])
        return len(pending)
