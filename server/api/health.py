"""`GET /health`: liveness and the state of every dependency, from the background probe's last results
(server/health_probe.py), so it answers at once even while the inference node is busy generating."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request

from server.deps import RuntimeDep
from server.health_probe import HEALTHY_INFERENCE
from server.runtime import Runtime

router = APIRouter(tags=["health"])


def _inference(runtime: Runtime) -> dict[str, Any]:
    out: dict[str, Any] = {"status": runtime.probe.results["inference"], "url": runtime.settings.inference_base_url}
    if runtime.node is not None and runtime.node.proc is not None:
        out.update(embedded=True, model=runtime.node.model.name, pid=runtime.node.proc.pid)
    if runtime.supervisor is not None:
        out["node"] = runtime.supervisor.public()
    return out


@router.get("/health")
async def health(runtime: RuntimeDep, request: Request) -> dict[str, Any]:
    """`status` is `ok` when every dependency answers (an inference node busy generating counts), `degraded`
    otherwise (the service still serves). `checked_seconds_ago`: the age of the probe results."""
    deps = runtime.deps
    try:
        active: int | None = await asyncio.to_thread(deps.sessions.count_active,
                                                     runtime.settings.active_session_window_seconds)
    except Exception:  # the database is down: /health still answers, and says so (dependencies.postgres)
        active = None
    results = runtime.probe.results
    inference = _inference(runtime)
    dependencies = {
        "memory_db": results["memory_db"],
        "vector_store": results["vector_store"],
        "embedder": "ok" if deps.embedder.loaded else "not loaded",
        "checkpointer": "ok",
        **({"postgres": results["postgres"]} if "postgres" in results else {}),
        "inference": inference,
        "circuits": {b.url: b.breaker.state for b in runtime.backends},
    }
    routing = await asyncio.to_thread(_routing, runtime)
    healthy = (all(v == "ok" for k, v in dependencies.items() if k not in ("inference", "circuits"))
               and inference["status"] in HEALTHY_INFERENCE and "open" not in dependencies["circuits"].values())
    return {
        "status": "ok" if healthy else "degraded",
        "uptime_seconds": round(time.time() - runtime.started_at, 3),
        "active_sessions": active,
        "turns_in_progress": runtime.turns.in_progress,
        "realtime": {"active_sessions": request.app.state.realtime.active},  # live voice sockets
        "checked_seconds_ago": runtime.probe.age(),
        "dependencies": dependencies,
        "storage": _storage(runtime),
        "routing": routing,
    }


def _storage(runtime: Runtime) -> dict[str, Any]:
    """The storage profile: where the memory and the vectors live (DATABASE_URL is never shown: it may hold a
    password)."""
    settings = runtime.settings
    return {"database": runtime.deps.episodes.db.dialect,
            "vectors": "chroma server" if settings.chroma_url else "embedded",
            **({"chroma_url": settings.chroma_url} if settings.chroma_url else {})}


def _routing(runtime: Runtime) -> dict[str, Any]:
    """The classifier (its file, classes, last reload error), the routes and the semantic cache (blocking)."""
    router, cache = runtime.deps.router, runtime.deps.semantic_cache
    if router is None:
        return {"enabled": False}
    out = {"enabled": True, "classifier": router.classifier.public(), **router.public()}
    if cache is not None:
        try:
            out["semantic_cache"]["entries"] = cache.count()
        except Exception:  # its database is down: /health still answers (dependencies say why)
            out["semantic_cache"]["entries"] = None
        counts = runtime.metrics.cache_counts
        out["semantic_cache"].update(hits=counts.get("hit", 0), misses=counts.get("miss", 0))
    return out
