"""`POST /memory/search`: what recall would find, scored, for users debugging their assistant."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from memory.hybrid import fuse
from memory.sessions import scope_of
from server.api.schemas import MemorySearchRequest, iso
from server.api.sessions import require_own_project
from server.deps import OwnerDep, RuntimeDep

router = APIRouter(prefix="/memory", tags=["memory"])


@router.post("/search")
async def search_memory(body: MemorySearchRequest, runtime: RuntimeDep, owner: OwnerDep) -> dict[str, Any]:
    """Hybrid (BM25 + vector) search of one project's episodes (or the default scope: shared, or with
    API_KEY_SCOPED_SESSIONS the key's own)."""
    await require_own_project(runtime, body.projectId, owner)
    deps = runtime.deps
    scope = scope_of(body.projectId, owner)
    candidates = max(body.k, runtime.settings.recall_candidates)

    def search():
        lexical = deps.episodes.search(scope, body.query, candidates)
        vector = deps.vectors.query(scope, deps.embedder.embed_one(body.query), candidates)
        return fuse(lexical, vector, deps.weights, set(), body.k, deps.episodes)

    hits = await asyncio.to_thread(search)
    return {"results": [{"id": h.id, "sessionId": h.session_id, "text": h.document, "score": round(h.score, 6),
                         "createdAt": iso(h.created_at)} for h in hits]}
