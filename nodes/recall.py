"""recall: find earlier exchanges relevant to the new user message (BM25 + vectors, fused)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig

from graph.config import RunOptions
from graph.deps import Deps
from graph.state import Node, Recalled, State
from graph.window import last_user_text, window_start
from memory.admin import find_entities
from memory.dates import dated_episodes
from memory.hybrid import FusedHit, fuse_explained, spread_sessions

log = logging.getLogger(__name__)

PREFETCH_KEY = "recall_prefetch"
"""configurable key of a `RecallPrefetch`: the search, started before the run by its caller."""


@dataclass
class Found:
    """What one search of a scope's memory found, before the recent window is taken out."""

    episodes: list[FusedHit]
    """Fused hits, best first (every candidate, at least `keep`), each with the parts of its score."""
    entities: list = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def search_memory(deps: Deps, scope: str, query: str, keep: int) -> Found:
    """Lexical and vector search of `scope` for `query`, fused, plus the entities it names (blocking).

    One worker-thread hop for the whole search: each hop costs more than FTS5 or fusion do. The query is
    embedded once, for episodes and entities. A failing embedder or vector store leaves lexical hits and
    says why in `problems`; nothing here raises.
    """
    limits = deps.limits
    n = limits.recall_candidates
    problems: list[str] = []
    try:
        lexical = deps.episodes.search(scope, query, n)
        dated = dated_episodes(deps.episodes, scope, query)  # a day the query names (memory/dates.py)
    except Exception as exc:
        problems.append(f"lexical search failed: {exc!r}")
        lexical, dated = [], []
    embedding = None
    try:
        embedding = deps.embedder.embed_one(query)
        vector = deps.vectors.query(scope, embedding, n)
    except Exception as exc:
        problems.append(f"vector search failed: {exc!r}")
        vector = []
    try:
        # Every candidate, best first: the caller leaves out its recent window, then spreads the rest.
        episodes = fuse_explained(lexical, vector, deps.weights, set(), max(keep, 2 * n + len(dated)), deps.episodes,
                                  dated)
    except Exception as exc:  # SQLite itself failing: recency only
        problems.append(f"reading recalled episodes failed: {exc!r}")
        episodes = []
    try:
        entities = find_entities(deps.entities, deps.vectors, scope, query, embedding, limits.entity_top_k,
                                 limits.entity_threshold)
    except Exception as exc:
        problems.append(f"entity search failed: {exc!r}")
        entities = []
    return Found(episodes, entities, problems)


@dataclass
class RecallPrefetch:
    """recall's search for one scope and query, already running in a worker thread.

    TurnRunner starts it as soon as the session's scope is known, so that the search overlaps the graph's
    start and the checkpoint's load. It keeps `keep` hits, enough for the node to take out the episodes of
    any recent window up to `recent_messages` long and still have `recall_top_k` left; the node checks
    that, the scope and the query, and searches again itself if one of them does not hold.
    """

    scope: str
    query: str
    keep: int
    future: asyncio.Future

    @classmethod
    def start(cls, deps: Deps, scope: str, query: str) -> RecallPrefetch | None:
        """The search, started now; None if recall would not search for this query."""
        limits = deps.limits
        if not query or (limits.recall_top_k == 0 and limits.entity_top_k == 0):
            return None
        keep = limits.recall_top_k + limits.recent_messages
        future = asyncio.get_running_loop().run_in_executor(None, search_memory, deps, scope, query, keep)
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # a turn that ends before using it
        return cls(scope, query, keep, future)

    def serves(self, scope: str, query: str, keep: int) -> bool:
        """Whether this search is the one the node would make."""
        return self.scope == scope and self.query == query and self.keep >= keep


def hit_detail(hit: FusedHit) -> dict[str, Any]:
    """Why an episode was recalled, kept with the turn (persist stores it for `GET /sessions/{id}/turns`):
    its fused score and what each search said of it, in `POST /memory/search`'s `scoreParts` shape."""
    lex, vec = hit.lexical, hit.vector
    return {
        "id": hit.episode.id, "sessionId": hit.episode.session_id, "score": round(hit.episode.score, 6),
        "scoreParts": {
            "lexical": lex and {"rank": lex.rank, "bm25": round(lex.bm25, 4),
                                "contribution": round(lex.contribution, 6)},
            "vector": vec and {"similarity": round(vec.similarity, 4), "rank": vec.rank,
                               "contribution": round(vec.contribution, 6)},
            "date": hit.date and {"rank": hit.date.rank, "contribution": round(hit.date.contribution, 6)},
        },
    }


def recall_depth(state: State, default: int) -> int:
    """Episodes to recall this turn: the route's `recall_top_k` (0 for small talk, more for questions about
    what was said before), else RECALL_TOP_K."""
    depth = (state.get("route") or {}).get("recall_top_k")
    return default if depth is None else max(0, int(depth))


def make_recall(deps: Deps) -> Node:
    """Build the recall node."""
    limits = deps.limits

    async def recall(state: State, config: RunnableConfig) -> dict[str, Any]:
        """Hybrid recall over the session's scope, deduplicated against the recent window.

        A failing embedder or vector store degrades recall to lexical + recency and says so in
        `recalled.degraded`; it never fails the turn.
        """
        opts = RunOptions.from_config(config)
        messages = state.get("messages", [])
        query = last_user_text(messages)
        top_k = recall_depth(state, limits.recall_top_k)
        no_memory = (state.get("route") or {}).get("recall_top_k") == 0
        if not query or no_memory or (top_k == 0 and limits.entity_top_k == 0):
            # Nothing to search for, or a route that wants no memory at all (small talk): no entities either.
            return {"recalled": Recalled(episodes=[], entities=[], degraded=False)}
        recent_ids = {m.id for m in messages[window_start(messages, limits.recent_messages) :] if m.id}
        keep = top_k + len(recent_ids)
        prefetch = (config.get("configurable") or {}).get(PREFETCH_KEY)
        if isinstance(prefetch, RecallPrefetch) and prefetch.serves(opts.scope, query, keep):
            found = await prefetch.future
        else:
            found = await asyncio.to_thread(search_memory, deps, opts.scope, query, keep)
        hits = [h for h in found.episodes if not (h.episode.ai_msg_id and h.episode.ai_msg_id in recent_ids)]
        hits = spread_sessions(hits, top_k, deps.weights.session_spread)
        recalled = Recalled(episodes=[h.episode.document for h in hits],
                            entities=[h.entity.document for h in found.entities], degraded=bool(found.problems),
                            episode_hits=[hit_detail(h) for h in hits],
                            entity_hits=[{"id": h.entity.id, "name": h.entity.name, "type": h.entity.type,
                                          "score": round(h.score, 4)} for h in found.entities])
        if found.problems:
            recalled["error"] = "; ".join(found.problems)
            log.warning("recall degraded for session %s: %s", opts.thread_id, recalled["error"])
        return {"recalled": recalled}

    return recall
