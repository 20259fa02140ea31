"""recall: find earlier exchanges relevant to the new user message (BM25 + vectors, fused)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from langchain_core.runnables import RunnableConfig

from graph.config import RunOptions
from graph.deps import Deps
from graph.state import Recalled, State
from graph.window import last_user_text, window_start
from memory.admin import find_entities
from memory.hybrid import fuse

log = logging.getLogger(__name__)


def make_recall(deps: Deps):
    """Build the recall node."""
    limits = deps.limits

    async def recall(state: State, config: RunnableConfig) -> dict[str, Any]:
        """Hybrid recall over the session's scope, deduplicated against the recent window.

        The user message is embedded once. A failing embedder or vector store degrades recall to
        lexical + recency and says so in `recalled.degraded`; it never fails the turn.
        """
        opts = RunOptions.from_config(config)
        messages = state.get("messages", [])
        query = last_user_text(messages)
        if not query or (limits.recall_top_k == 0 and limits.entity_top_k == 0):
            return {"recalled": Recalled(episodes=[], entities=[], degraded=False)}
        recent_ids = {m.id for m in messages[window_start(messages, limits.recent_messages) :] if m.id}
        n = limits.recall_candidates

        def search() -> tuple[list, list, list[str]]:
            # One worker-thread hop for the whole search: each hop costs more than FTS5 or fusion do.
            problems: list[str] = []
            try:
                lexical = deps.episodes.search(opts.scope, query, n)
            except Exception as exc:
                problems.append(f"lexical search failed: {exc!r}")
                lexical = []
            embedding = None
            try:
                embedding = deps.embedder.embed_one(query)  # once, for episodes and entities
                vector = deps.vectors.query(opts.scope, embedding, n)
            except Exception as exc:
                problems.append(f"vector search failed: {exc!r}")
                vector = []
            try:
                episodes = fuse(lexical, vector, deps.weights, recent_ids, limits.recall_top_k, deps.episodes)
            except Exception as exc:  # SQLite itself failing: recency only
                problems.append(f"reading recalled episodes failed: {exc!r}")
                episodes = []
            try:
                entities = find_entities(deps.entities, deps.vectors, opts.scope, query, embedding,
                                         limits.entity_top_k, limits.entity_threshold)
            except Exception as exc:
                problems.append(f"entity search failed: {exc!r}")
                entities = []
            return episodes, entities, problems

        hits, entities, problems = await asyncio.to_thread(search)
        recalled = Recalled(episodes=[h.document for h in hits], entities=[h.entity.document for h in entities],
                            degraded=bool(problems))
        if problems:
            recalled["error"] = "; ".join(problems)
            log.warning("recall degraded for session %s: %s", opts.thread_id, recalled["error"])
        return {"recalled": recalled}

    return recall
