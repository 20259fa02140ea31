"""`GET /health`: liveness and the state of every dependency."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter

from server.deps import RuntimeDep
from server.runtime import Runtime

router = APIRouter(tags=["health"])


async def _check(fn) -> str:
    try:
        await asyncio.to_thread(fn)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"


async def _inference(runtime: Runtime) -> dict[str, Any]:
    url = runtime.settings.inference_base_url
    try:
        response = await runtime.http.get(
            url.rstrip("/") + "/models",
            headers={"Authorization": f"Bearer {runtime.settings.inference_api_key}"},
            timeout=2.0,
        )
        status = "ok" if response.status_code < 500 else f"error: HTTP {response.status_code}"
    except Exception as exc:
        status = f"unreachable: {type(exc).__name__}"
    out: dict[str, Any] = {"status": status, "url": url}
    if runtime.node is not None and runtime.node.proc is not None:
        out.update(embedded=True, model=runtime.node.model.name, pid=runtime.node.proc.pid)
    return out


@router.get("/health")
async def health(runtime: RuntimeDep) -> dict[str, Any]:
    """`status` is `ok` when every dependency answers, `degraded` otherwise (the service still serves)."""
    deps = runtime.deps
    checks = await asyncio.gather(
        _check(lambda: deps.episodes.count()),
        _check(deps.vectors.heartbeat),
        _inference(runtime),
    )
    active = await asyncio.to_thread(deps.sessions.count_active, runtime.settings.active_session_window_seconds)
    dependencies = {
        "memory_db": checks[0],
        "vector_store": checks[1],
        "embedder": "ok" if deps.embedder.loaded else "not loaded",
        "checkpointer": "ok",
        "inference": checks[2],
        "circuits": {b.url: b.breaker.state for b in runtime.backends},
    }
    healthy = (all(v == "ok" for k, v in dependencies.items() if k not in ("inference", "circuits"))
               and checks[2]["status"] == "ok" and "open" not in dependencies["circuits"].values())
    return {
        "status": "ok" if healthy else "degraded",
        "uptime_seconds": round(time.time() - runtime.started_at, 3),
        "active_sessions": active,
        "turns_in_progress": runtime.turns.in_progress,
        "dependencies": dependencies,
    }
