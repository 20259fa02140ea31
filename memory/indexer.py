"""Moves episode embedding off the reply's critical path, durably.

An episode row is written to the memory database with `indexed = 0` before the reply completes; this worker
embeds pending rows in batches and marks them indexed. Rows left pending by a crash are picked up on the next
start (`schedule()` in the lifespan), so the vector index always catches up with the database. On Postgres,
several workers' indexers share the pending rows: each claims its batch (`EpisodeStore.claim`, `FOR UPDATE
SKIP LOCKED`), so each episode is embedded once, and a crashed worker's claim expires.

What an episode's vector is made from (`by`, the setting EPISODE_EMBEDDING):
- `context-idle` (the default): the exchange followed by the one before it in its session (an answer often
  needs its question: +4 points of evidence recall on LoCoMo, BENCHMARKS.md), without its cost on a live turn.
  A turn's episode is first indexed by its user message's vector, which recall has just computed for its
  query (free); once no turn has finished for `refine_idle` seconds, `refine_batch` replaces those vectors
  by context vectors, a few at a time. Under sustained load refining waits; episodes that need an embedding
  anyway (an import, `orchestrator reembed`, a crash's leftovers) get their context vector at once.
- `message`: the user message's vector only (recall embeds the very same text as its query, so the vector is
  reused and a turn costs one embedding instead of two: the exchange is about twice as long, and embedding it
  took ~40% of the service's CPU under load, measured with py-spy). The assistant's words stay searchable
  lexically (FTS5 indexes the whole exchange).
- `exchange`: the whole `User: … Assistant: …` document; `turns`: the user message's vector and a second one,
  its reply's (id `<episode id>#reply`, memory/fusion.py), so a reply is found by meaning too; `context`: the
  context vector at once, on every turn.

Batches are large (64): a Chroma add costs ~20 ms whatever its size up to a few dozen vectors (27 ms for 8,
55 ms for 64 at 10k episodes), and recall's vector queries wait behind it in the Chroma process, so fewer,
larger adds block them less in total (streaming TTFT p95 at 10k: 47/45 → 36/30 ms in two A/B pairs).
Indexing waits for a quiet moment (`idle_delay` without a new turn, at most `max_delay`): embedding the
previous episode while the next turn embeds its query makes both wait for the CPU (measured: recall
17 ms with a pause between turns, 34 ms back to back). Lexical recall sees an episode at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from memory.embedder import Embedder
from memory.episodes import CONTEXT_INDEXED, INDEXED, UNINDEXED, EpisodeStore, StoredEpisode
from memory.fusion import reply_vector_id
from memory.vectors import VectorStore

log = logging.getLogger(__name__)

BULK_THREADS = min(4, os.cpu_count() or 1)
"""Threads embedding at once for bulk work (memory/embedder.py `embed_background`)."""


Embedding = Literal["message", "exchange", "turns", "context", "context-idle"]


class Indexer:
    """One background task per event loop drains the pending episodes (and, with `by="context-idle"`,
    refines the vectors of those indexed by their user message once the service is idle)."""

    def __init__(self, episodes: EpisodeStore, vectors: VectorStore, embedder: Embedder, batch: int = 64,
                 idle_delay: float = 0.2, max_delay: float = 5.0, step_delay: float = 0.1,
                 by: Embedding = "message", refine_idle: float = 1.0, refine_batch: int = 8) -> None:
        self.episodes = episodes
        self.by = by
        self.vectors = vectors
        self.embedder = embedder
        self.batch = batch
        self.idle_delay = idle_delay
        self.max_delay = max_delay
        self.step_delay = step_delay
        self.refine_idle = refine_idle
        self.refine_size = refine_batch
        self._task: asyncio.Task | None = None
        self._again = False
        self._hurry = False
        self._last_schedule = 0.0
        # Not niced: the indexer shares the embedder's lock with queries, and a starved low-priority
        # holder made queries wait 200 ms (priority inversion, measured). Queries go first by the lock.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="indexer")

    def schedule(self) -> None:
        """Index what is pending once things are quiet (or drain again after the running pass). Never blocks."""
        loop = asyncio.get_running_loop()
        self._last_schedule = loop.time()
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = loop.create_task(self._run())

    async def drain(self) -> None:
        """Index everything scheduled so far, now, and wait for it (refining is left for later)."""
        self._hurry = True
        try:
            while self._task is not None and not self._task.done():
                await asyncio.shield(self._task)
        finally:
            self._hurry = False

    async def _quiet(self, bound: float) -> None:
        """Wait until no turn has finished for `idle_delay` seconds, or `bound` seconds at most."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not self._hurry and loop.time() - started < bound:
            wait = self.idle_delay - (loop.time() - self._last_schedule)
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._again = False
            await self._quiet(self.max_delay)
            try:
                # Small batches, each after a (bounded) quiet moment: under sustained load indexing is
                # spread between turns instead of stalling one of them.
                while await loop.run_in_executor(self._executor, self._index_now) == self.batch:
                    await self._quiet(self.step_delay)
                if await self._idle():
                    refined = await loop.run_in_executor(self._executor, self.refine_batch)
                    self._again = self._again or refined > 0  # there may be more: next round
            except Exception:  # the rows stay pending and are retried on the next schedule
                log.exception("indexing episodes failed; they stay pending and will be retried")
                return
            if not self._again:
                return

    async def _idle(self) -> bool:
        """With `by="context-idle"`: wait until no turn has finished for `refine_idle` seconds; False at once
        for the other ways, and as soon as a turn's episode is to be indexed or a drain wants the task done."""
        if self.by != "context-idle":
            return False
        loop = asyncio.get_running_loop()
        while not (self._again or self._hurry):
            wait = self.refine_idle - (loop.time() - self._last_schedule)
            if wait <= 0:
                return True
            await asyncio.sleep(min(wait, 0.05))
        return False

    def index_batch(self, parallel: int = 1) -> int:
        """Embed and index one batch of pending episodes (on `parallel` threads: bulk work); returns how many
        were indexed."""
        pending = self.episodes.claim(self.batch)  # on Postgres, ours alone until marked or released
        if not pending:
            return 0
        try:
            self._embed(pending, parallel)
        except BaseException:
            self.episodes.release([e.id for e in pending])  # any worker's indexer retries them
            raise
        return len(pending)

    def _index_now(self) -> int:
        """`index_batch`, on every core while a drain waits for it (an import's answer, a shutdown)."""
        return self.index_batch(BULK_THREADS if self._hurry else 1)

    def refine_batch(self) -> int:
        """Replace the user-message vectors of a few episodes by their context vectors (`context-idle`);
        returns how many were refined (0: none is left)."""
        batch = self.episodes.claim(self.refine_size, level=INDEXED)
        if not batch:
            return 0
        try:
            self._write(batch, self._context_texts(batch), CONTEXT_INDEXED, was=INDEXED)
        except BaseException:
            self.episodes.release([e.id for e in batch])
            raise
        return len(batch)

    def _embed(self, pending: list[StoredEpisode], parallel: int) -> None:
        """Embed a claimed batch, add the vectors, then mark the episodes indexed."""
        if self.by == "context-idle":
            # A live turn's user message was just embedded as its recall query: its vector costs nothing
            # now, and the context vector waits for an idle moment. Others (imports, re-embedding, a
            # crash's leftovers) need an embedding anyway: the context's, for good.
            known = {e.id: vector for e in pending if e.user_text and (vector := self.embedder.recent(e.user_text))}
            quick = [e for e in pending if e.id in known]
            if quick:
                self._add(quick, [known[e.id] for e in quick])
                self.episodes.mark_indexed(quick)
            rest = [e for e in pending if e.id not in known]
            self._write(rest, self._context_texts(rest), CONTEXT_INDEXED, parallel=parallel)
        elif self.by == "context":
            self._write(pending, self._context_texts(pending), CONTEXT_INDEXED, parallel=parallel)
        elif self.by == "turns":  # and the reply's own vector; its text is the document's part after the user's
            replies = [(e, text) for e in pending if (text := reply_text(e))]
            vectors = self.embedder.embed_background([e.user_text or e.document for e in pending]
                                                     + [text for _, text in replies], parallel)
            self._add(pending, vectors[: len(pending)])
            self._add([e for e, _ in replies], vectors[len(pending):], [reply_vector_id(e.id) for e, _ in replies])
            self.episodes.mark_indexed(pending)
        else:
            self._write(pending, [e.document if self.by == "exchange" else e.user_text or e.document
                                  for e in pending], INDEXED, parallel=parallel)

    def _write(self, batch: list[StoredEpisode], texts: list[str], level: int, was: int = UNINDEXED,
               parallel: int = 1) -> None:
        """Embed `texts` (one per episode), add the vectors, then mark the episodes at `level`."""
        if batch:
            self._add(batch, self.embedder.embed_background(texts, parallel))
            self.episodes.mark_indexed(batch, level, was)

    def _add(self, batch: list[StoredEpisode], vectors: list[list[float]], ids: list[str] | None = None) -> None:
        """Add one vector per episode (under the episode's id, or `ids`), scope by scope."""
        ids = ids or [e.id for e in batch]
        by_scope: dict[str, list[int]] = {}
        for i, e in enumerate(batch):
            by_scope.setdefault(e.scope, []).append(i)
        for scope, rows in by_scope.items():
            self.vectors.add(scope, [ids[i] for i in rows], [vectors[i] for i in rows],
                             [batch[i].document for i in rows])
        # An episode rewritten while it was embedded (a reply cut to what was heard) stays pending: its
        # marking finds another text (EpisodeStore.mark_indexed) and the next pass embeds it again.

    def _context_texts(self, batch: list[StoredEpisode]) -> list[str]:
        """Each episode's exchange and, after it (truncation cuts the end), the one before it in its session."""
        return [f"{e.document}\n{previous}" if previous else e.document
                for e, previous in zip(batch, self._previous(batch), strict=True)]

    def _previous(self, pending: list[StoredEpisode]) -> list[str]:
        """The document of each episode's predecessor in its session ('' for a session's first)."""
        out = []
        for e in pending:
            rows = self.episodes.db.query(
                "SELECT document FROM episodes WHERE session_id = ? AND committed = 1 AND seq <"
                " (SELECT seq FROM episodes WHERE id = ?) ORDER BY seq DESC LIMIT 1", (e.session_id, e.id))
            out.append(rows[0]["document"] if rows else "")
        return out


def reply_text(episode: StoredEpisode) -> str:
    """The reply's words of an episode: what its document holds after the user's message (render_document
    writes `[date] Name: user message` then `\nName: reply`), without the label."""
    user = episode.user_text.strip()
    at = episode.document.find(user) if user else -1
    rest = episode.document[at + len(user):] if at >= 0 else episode.document.partition("\n")[2]
    _, sep, text = rest.lstrip("\n").partition(": ")
    return text.strip() if sep else rest.strip()
