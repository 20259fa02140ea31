"""`GET /metrics`: Prometheus text format."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from server.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/metrics")
async def metrics(runtime: RuntimeDep) -> Response:
    """Request counts and latencies by route and status, inference and recall latency, tokens, circuits,
    active sessions, checkpoint rows and bytes on disk."""
    m = runtime.metrics
    active = await asyncio.to_thread(runtime.deps.sessions.count_active,
                                     runtime.settings.active_session_window_seconds)
    m.active_sessions.set(active)
    m.turns_in_progress.set(runtime.turns.in_progress)
    stored = await asyncio.to_thread(runtime.pruner.store.stats)
    m.checkpoint_rows.labels("checkpoints").set(stored.checkpoints)
    m.checkpoint_rows.labels("writes").set(stored.writes)
    m.checkpoint_bytes.set(stored.bytes_on_disk)
    m.checkpoint_free_bytes.set(stored.free_bytes)
    for backend in runtime.backends:
        m.circuit_open.labels(backend.url).set(1 if backend.breaker.state == "open" else 0)
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)
