"""`POST /memory/search`: what recall would find, scored, for users debugging their assistant."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from memory.dates import dated_episodes
from memory.hybrid import FusedHit, fuse_explained, spread_sessions
from memory.sessions import scope_of
from server.api.schemas import (
    DateScorePublic,
    LexicalScorePublic,
    MemoryHitPublic,
    MemorySearchPublic,
    MemorySearchRequest,
    ScorePartsPublic,
    VectorScorePublic,
    iso,
)
from server.api.sessions import require_own_project
from server.deps import OwnerDep, RuntimeDep

router = APIRouter(prefix="/memory", tags=["memory"])


def hit_public(hit: FusedHit) -> MemoryHitPublic:
    """A fused hit with the parts of its score, rounded for reading."""
    e, lex, vec, day = hit.episode, hit.lexical, hit.vector, hit.date
    return MemoryHitPublic(
        id=e.id, sessionId=e.session_id, text=e.document, score=round(e.score, 6), createdAt=iso(e.created_at),
        scoreParts=ScorePartsPublic(
            lexical=lex and LexicalScorePublic(rank=lex.rank, bm25=round(lex.bm25, 4),
                                               contribution=round(lex.contribution, 6)),
            vector=vec and VectorScorePublic(similarity=round(vec.similarity, 4), rank=vec.rank,
                                             contribution=round(vec.contribution, 6)),
            date=day and DateScorePublic(rank=day.rank, contribution=round(day.contribution, 6)),
        ),
    )


@router.post("/search")
async def search_memory(body: MemorySearchRequest, runtime: RuntimeDep, owner: OwnerDep) -> MemorySearchPublic:
    """Hybrid (BM25 + vector) search of one project's episodes (or the default scope: shared, or with
    API_KEY_SCOPED_SESSIONS the key's own). Each result's `scoreParts` says why it came back: its rank and
    BM25 score in the full-text search, its similarity and rank in the vector search."""
    await require_own_project(runtime, body.projectId, owner)
    deps = runtime.deps
    scope = scope_of(body.projectId, owner)
    candidates = max(body.k, runtime.settings.recall_candidates)

    def search() -> list[FusedHit]:
        lexical = deps.episodes.search(scope, body.query, candidates)
        dated = dated_episodes(deps.episodes, scope, body.query)
        vector = deps.vectors.query(scope, deps.embedder.embed_one(body.query), candidates)
        fused = fuse_explained(lexical, vector, deps.weights, set(), 2 * candidates + len(dated), deps.episodes,
                               dated)
        return spread_sessions(fused, body.k, deps.weights.session_spread)

    hits = await asyncio.to_thread(search)
    return MemorySearchPublic(results=[hit_public(h) for h in hits])
