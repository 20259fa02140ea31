"""Moves episode embedding off the reply's critical path, durably.

An episode row is written to the memory database with `indexed = 0` before the reply completes; this worker
embeds pending rows in batches and marks them indexed. Rows left pending by a crash are picked up on the next
start (`schedule()` in the lifespan), so the vector index always catches up with the database. On Postgres,
several workers' indexers share the pending rows: each claims its batch (`EpisodeStore.claim`, `FOR UPDATE
SKIP LOCKED`), so each episode is embedded once, and a crashed worker's claim expires.

An episode's vector is that of its user message by default (`by="message"`): recall embeds the very same
text as its query, so the vector is reused and a turn costs one embedding instead of two (the exchange is
about twice as long, and embedding it took ~40% of the service's CPU under load, measured with py-spy).
The assistant's words stay searchable lexically (FTS5 indexes the whole exchange). `by="exchange"`
embeds the whole `User: … Assistant: …` document instead; `by="turns"` adds a second vector per episode,
its reply's (id `<episode id>#reply`, memory/fusion.py), so a reply is found by meaning too; `by="context"`
embeds the exchange followed by the one before it in its session (an answer often needs its question).

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
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from memory.embedder import Embedder
from memory.episodes import EpisodeStore, StoredEpisode
from memory.fusion import reply_vector_id
from memory.vectors import VectorStore

log = logging.getLogger(__name__)


class Indexer:
    """One background task per event loop drains the pending episodes."""

    def __init__(self, episodes: EpisodeStore, vectors: VectorStore, embedder: Embedder, batch: int = 64,
                 idle_delay: float = 0.2, max_delay: float = 5.0, step_delay: float = 0.1,
                 by: Literal["message", "exchange", "turns", "context"] = "message") -> None:
        self.episodes = episodes
        self.by = by
        self.vectors = vectors
        self.embedder = embedder
        self.batch = batch
        self.idle_delay = idle_delay
        self.max_delay = max_delay
        self.step_delay = step_delay
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
        """Index everything scheduled so far, now, and wait for it."""
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
        await self._quiet(self.max_delay)
        while True:
            self._again = False
            try:
                # Small batches, each after a (bounded) quiet moment: under sustained load indexing is
                # spread between turns instead of stalling one of them.
                loop = asyncio.get_running_loop()
                while await loop.run_in_executor(self._executor, self.index_batch) == self.batch:
                    await self._quiet(self.step_delay)
            except Exception:  # the rows stay pending and are retried on the next schedule
                log.exception("indexing episodes failed; they stay pending and will be retried")
                return
            if not self._again:
                return

    def index_batch(self) -> int:
        """Embed and index one batch of pending episodes; returns how many were indexed."""
        pending = self.episodes.claim(self.batch)  # on Postgres, ours alone until marked or released
        if not pending:
            return 0
        try:
            self._embed(pending)
        except BaseException:
            self.episodes.release([e.id for e in pending])  # any worker's indexer retries them
            raise
        return len(pending)

    def _embed(self, pending: list[StoredEpisode]) -> None:
        """Embed a claimed batch, add the vectors, then mark the episodes indexed."""
        if self.by == "context":  # the exchange and, after it (truncation cuts the end), the one before it
            texts = [f"{e.document}\n{previous}" if previous else e.document
                     for e, previous in zip(pending, self._previous(pending), strict=True)]
        else:
            texts = [e.user_text or e.document if self.by != "exchange" else e.document for e in pending]
        ids = [e.id for e in pending]
        docs = [e.document for e in pending]
        scopes = [e.scope for e in pending]
        if self.by == "turns":  # the reply's own vector; its text is the document's part after the user's
            replies = [(e, reply_text(e)) for e in pending]
            replies = [(e, text) for e, text in replies if text]
            texts += [text for _, text in replies]
            ids += [reply_vector_id(e.id) for e, _ in replies]
            docs += [e.document for e, _ in replies]
            scopes += [e.scope for e, _ in replies]
        vectors = self.embedder.embed_background(texts)
        by_scope: dict[str, list[int]] = {}
        for i, scope in enumerate(scopes):
            by_scope.setdefault(scope, []).append(i)
        for scope, rows in by_scope.items():
            self.vectors.add(scope, [ids[i] for i in rows], [vectors[i] for i in rows], [docs[i] for i in rows])
        # An episode rewritten while it was embedded (a reply cut to what was heard) stays pending: next pass.
        self.episodes.mark_indexed([e.id for e in pending], [e.document for e in pending])

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
