"""`GET /metrics`: Prometheus text format."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from inference.node_supervisor import NODE_STATES
from server.deps import RuntimeDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
CIRCUIT_STATES = ("closed", "half-open", "open")


@router.get("/metrics")
async def metrics(runtime: RuntimeDep) -> Response:
    """Request counts and latencies by route and status, inference and recall latency, tokens, circuits,
    active sessions, checkpoint rows and bytes on disk."""
    m = runtime.metrics
    for name, result in runtime.probe.results.items():
        if name != "inference" and result != "not probed yet":
            m.dependency_up.labels(name).set(1 if result == "ok" else 0)
    m.turns_in_progress.set(runtime.turns.in_progress)
    try:
        m.active_sessions.set(await asyncio.to_thread(runtime.deps.sessions.count_active,
                                                      runtime.settings.active_session_window_seconds))
        stored = await asyncio.to_thread(runtime.pruner.store.stats)
        m.checkpoint_rows.labels("checkpoints").set(stored.checkpoints)
        m.checkpoint_rows.labels("writes").set(stored.writes)
        m.checkpoint_bytes.set(stored.bytes_on_disk)
        m.checkpoint_free_bytes.set(stored.free_bytes)
        if runtime.deps.semantic_cache is not None:
            m.cache_entries.set(await asyncio.to_thread(runtime.deps.semantic_cache.count))
    except Exception:  # a database is down: the other metrics (dependency_up 0 among them) still answer
        log.warning("metrics: a store could not be read; its gauges keep their last values", exc_info=True)
    for backend in runtime.backends:
        state = backend.breaker.state
        m.circuit_open.labels(backend.url).set(1 if state == "open" else 0)
        for name in CIRCUIT_STATES:
            m.circuit_state.labels(backend.url, name).set(1 if state == name else 0)
    if runtime.supervisor is not None:
        for name in NODE_STATES:
            m.node_state.labels(name).set(1 if runtime.supervisor.state == name else 0)
        m.node_restarts.set(runtime.supervisor.restarts)
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)
